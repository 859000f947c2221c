package search

import (
	"errors"
	"strings"
)

// modifierError carries the message of a modifier problem.
type modifierError string

func (e modifierError) Error() string { return string(e) }

// checkModifier reports whether the parameter's type takes the modifier.
func checkModifier(p *Param, m string) error {
	if m == "" || m == "missing" {
		return nil
	}
	switch p.Type {
	case TypeString:
		if m == "exact" || m == "contains" {
			return nil
		}
	case TypeToken:
		switch m {
		case "not", "text":
			return nil
		case "of-type":
			for _, e := range p.Elements {
				if e.DataType == "Identifier" {
					return nil
				}
			}
			return modifierError(":of-type applies to Identifier parameters only")
		case "above", "below", "in", "not-in":
			return modifierError("this token modifier needs terminology support, not available yet")
		}
	case TypeReference:
		if m == "identifier" {
			return nil
		}
		if IsResourceType(m) {
			if len(p.Targets) > 0 && !contains(p.Targets, m) {
				return modifierError("type modifier is not a target of the parameter")
			}
			return nil
		}
	case TypeURI:
		if m == "above" || m == "below" {
			return nil
		}
	}
	return modifierError("modifier not allowed on a " + string(p.Type) + " parameter")
}

// splitEscaped splits s at every sep not preceded by a backslash escape,
// leaving the escapes in place.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

var errEscape = errors.New("invalid escape: only \\, \\| \\$ and \\\\ are allowed")

// unescape resolves \, \| \$ and \\.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", errEscape
		}
		i++
		switch s[i] {
		case ',', '|', '$', '\\':
			b.WriteByte(s[i])
		default:
			return "", errEscape
		}
	}
	return b.String(), nil
}

// splitUnescaped splits at unescaped seps and unescapes each part.
func splitUnescaped(s string, sep byte) ([]string, error) {
	parts := splitEscaped(s, sep)
	for i, p := range parts {
		u, err := unescape(p)
		if err != nil {
			return nil, err
		}
		parts[i] = u
	}
	return parts, nil
}

var prefixes = map[string]Prefix{
	"eq": PrefixEq, "ne": PrefixNe, "gt": PrefixGt, "lt": PrefixLt, "ge": PrefixGe,
	"le": PrefixLe, "sa": PrefixSa, "eb": PrefixEb, "ap": PrefixAp,
}

// cutPrefix splits a comparison prefix off a number, date or quantity.
func cutPrefix(s string) (Prefix, string) {
	if len(s) > 2 {
		if p, ok := prefixes[s[:2]]; ok {
			c := s[2]
			if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' {
				return p, s[2:]
			}
		}
	}
	return "", s
}

// parseValue parses one comma-separated piece (still escaped) of a clause.
func parseValue(p *Param, modifier, piece string) (Value, error) {
	var v Value
	if modifier == "missing" {
		switch piece {
		case "true":
			v.Missing = true
		case "false":
		default:
			return v, errors.New(":missing takes true or false")
		}
		v.Raw = piece
		return v, nil
	}
	switch p.Type {
	case TypeString, TypeURI:
		s, err := unescape(piece)
		if err != nil {
			return v, err
		}
		v.Raw = s
		if p.Type == TypeString {
			v.Str = NormalizeString(s)
		} else {
			v.URL = s
		}
	case TypeToken:
		return tokenValue(modifier, piece)
	case TypeDate:
		s, err := unescape(piece)
		if err != nil {
			return v, err
		}
		v.Raw = s
		var rest string
		v.Prefix, rest = cutPrefix(s)
		lo, hi, ok := DateRange(rest)
		if !ok {
			return v, errors.New("expected a date: [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|+hh:mm]]]]")
		}
		v.Lo, v.Hi = lo, hi
	case TypeNumber:
		s, err := unescape(piece)
		if err != nil {
			return v, err
		}
		v.Raw = s
		var rest string
		v.Prefix, rest = cutPrefix(s)
		n, lo, hi, ok := NumberRange(rest)
		if !ok {
			return v, errors.New("expected a number: [prefix]decimal[e exponent]")
		}
		v.Num, v.NumLo, v.NumHi = n, lo, hi
	case TypeQuantity:
		return quantityValue(piece)
	case TypeReference:
		return referenceValue(p, modifier, piece)
	default:
		return v, errors.New("parameter type not supported")
	}
	return v, nil
}

func tokenValue(modifier, piece string) (Value, error) {
	var v Value
	if modifier == "text" {
		s, err := unescape(piece)
		if err != nil {
			return v, err
		}
		v.Raw, v.Str = s, NormalizeString(s)
		return v, nil
	}
	if modifier == "of-type" {
		parts, err := splitUnescaped(piece, '|')
		if err != nil {
			return v, err
		}
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return v, errors.New("expected typeSystem|typeCode|value")
		}
		v.Raw = strings.Join(parts, "|")
		v.System, v.HasSystem, v.Code, v.Ident = parts[0], true, parts[1], parts[2]
		return v, nil
	}
	return systemCode(piece)
}

// systemCode parses the token forms code, system|code, |code and system|.
func systemCode(piece string) (Value, error) {
	var v Value
	parts, err := splitUnescaped(piece, '|')
	if err != nil {
		return v, err
	}
	switch len(parts) {
	case 1:
		v.Code = parts[0]
		v.Raw = parts[0]
	case 2:
		if parts[0] == "" && parts[1] == "" {
			return v, errors.New("expected code, system|code, |code or system|")
		}
		v.HasSystem, v.System, v.Code = true, parts[0], parts[1]
		v.Raw = parts[0] + "|" + parts[1]
	default:
		return v, errors.New("expected code, system|code, |code or system| (escape a literal | as \\|)")
	}
	return v, nil
}

func quantityValue(piece string) (Value, error) {
	var v Value
	parts, err := splitUnescaped(piece, '|')
	if err != nil {
		return v, err
	}
	if len(parts) != 1 && len(parts) != 3 {
		return v, errors.New("expected [prefix]number, [prefix]number|system|code or [prefix]number||code")
	}
	v.Raw = strings.Join(parts, "|")
	var rest string
	v.Prefix, rest = cutPrefix(parts[0])
	n, lo, hi, ok := NumberRange(rest)
	if !ok {
		return v, errors.New("expected a number before the unit")
	}
	v.Num, v.NumLo, v.NumHi = n, lo, hi
	if len(parts) == 3 {
		v.System, v.Code = parts[1], parts[2]
		v.HasSystem = parts[1] != ""
		// A UCUM unit is searched in its canonical form, which the
		// extractor also indexes: 5000|...|ug finds 5 mg.
		if v.System == "" || v.System == UCUMSystem {
			if canon, cn, clo, chi, ok := canonicalNums(v.Code, v.Num, v.NumLo, v.NumHi); ok {
				v.Code, v.Num, v.NumLo, v.NumHi = canon, cn, clo, chi
			}
		}
	}
	return v, nil
}

func referenceValue(p *Param, modifier, piece string) (Value, error) {
	var v Value
	if modifier == "identifier" {
		return systemCode(piece)
	}
	parts, err := splitUnescaped(piece, '|')
	if err != nil {
		return v, err
	}
	if len(parts) > 2 {
		return v, errors.New("expected Type/id, id, a URL or canonical|version")
	}
	s := parts[0]
	v.Raw = strings.Join(parts, "|")
	if s == "" {
		return v, errors.New("empty reference")
	}
	if strings.Contains(s, "://") || strings.HasPrefix(s, "urn:") {
		v.URL = s
		if len(parts) == 2 {
			v.RefVersion = parts[1]
		} else if i := strings.Index(s, "/_history/"); i >= 0 {
			v.URL, v.RefVersion = s[:i], s[i+len("/_history/"):]
		}
		return v, nil
	}
	if len(parts) == 2 {
		return v, errors.New("a version after | applies to canonical URLs only")
	}
	if !strings.Contains(s, "/") {
		if !validID(s) {
			return v, errors.New("invalid resource id")
		}
		v.RefID = s
		if modifier != "" { // :Type
			v.RefType = modifier
		}
		return v, nil
	}
	e, ok := ParseReference(s)
	if !ok || !validID(e.RefID) {
		return v, errors.New("expected Type/id or Type/id/_history/version")
	}
	if modifier != "" && e.RefType != modifier {
		return v, errors.New("reference type differs from the type modifier")
	}
	if len(p.Targets) > 0 && !contains(p.Targets, e.RefType) {
		return v, errors.New("reference type is not a target of the parameter")
	}
	v.RefType, v.RefID, v.RefVersion = e.RefType, e.RefID, e.RefVersion
	return v, nil
}

// validID checks the FHIR id syntax: 1-64 of [A-Za-z0-9\-.].
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
