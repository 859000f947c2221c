package search

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ParseOptions bounds and tunes Parse. Zero values take the defaults shown.
type ParseOptions struct {
	// Strict is Prefer: handling=strict: unknown or unsupported parameters
	// are errors instead of warnings.
	Strict bool
	// DefaultCount is the page size when _count is absent (0 leaves Count 0,
	// the server default).
	DefaultCount int
	// MaxCount clamps _count (default 1000); a larger _count gets a warning.
	MaxCount int
	// MaxValues bounds the comma-separated values of one parameter (default 100).
	MaxValues int
	// MaxClauses bounds the clauses, sort keys and includes together (default 64).
	MaxClauses int
	// MaxValueLength bounds one parameter value in bytes (default 4096).
	MaxValueLength int
	// MaxOffset bounds _offset (default 1,000,000).
	MaxOffset int
	// MaxChainDepth bounds the forward links of one chained parameter
	// (subject.organization.name has 2; default 4).
	MaxChainDepth int
	// MaxHasDepth bounds the nested _has of one parameter (default 4).
	MaxHasDepth int
	// MaxIncluded bounds the resources _include/_revinclude add to one page
	// (default 1000) and MaxIncludeRounds the :iterate rounds (default 8);
	// both go into the Query for the store to enforce.
	MaxIncluded      int
	MaxIncludeRounds int
	// Custom, when set, holds the runtime SearchParameters, consulted where
	// the built-in registry has no parameter of the name. A custom parameter
	// whose reindex has not completed is refused with CodeIndexing.
	Custom *Custom
}

func (o *ParseOptions) defaults() {
	if o.MaxCount <= 0 {
		o.MaxCount = 1000
	}
	if o.DefaultCount > o.MaxCount {
		o.DefaultCount = o.MaxCount
	}
	if o.MaxValues <= 0 {
		o.MaxValues = 100
	}
	if o.MaxClauses <= 0 {
		o.MaxClauses = 64
	}
	if o.MaxValueLength <= 0 {
		o.MaxValueLength = 4096
	}
	if o.MaxOffset <= 0 {
		o.MaxOffset = 1_000_000
	}
	if o.MaxChainDepth <= 0 {
		o.MaxChainDepth = 4
	}
	if o.MaxHasDepth <= 0 {
		o.MaxHasDepth = 4
	}
	if o.MaxIncluded <= 0 {
		o.MaxIncluded = 1000
	}
	if o.MaxIncludeRounds <= 0 {
		o.MaxIncludeRounds = 8
	}
}

// Parse turns query parameters into a Query for resourceType ("" for a
// system-level search, where only the parameters every type shares and _type
// apply). Repeated parameters are ANDed, comma-separated values ORed.
//
// Unknown parameters, and the ones not supported yet (_query, _filter,
// special parameters...), are Warnings in lenient mode and errors in
// strict mode. A value that does not parse, a bad modifier and an exceeded
// limit are errors in both modes. Errors are *Error and never quote a value.
func Parse(resourceType string, values url.Values, opts ParseOptions) (*Query, []Warning, error) {
	opts.defaults()
	p := &parser{opts: opts, q: &Query{Type: resourceType, Count: opts.DefaultCount,
		MaxIncluded: opts.MaxIncluded, MaxIncludeRounds: opts.MaxIncludeRounds}}
	if resourceType != "" && !IsResourceType(resourceType) {
		return nil, nil, &Error{Code: CodeUnknownType, Msg: "unknown resource type"}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// _type first: a system-level search resolves parameters against it.
	if vs, ok := values["_type"]; ok {
		if err := p.types(vs); err != nil {
			return nil, nil, err
		}
	}
	for _, k := range keys {
		if k == "_type" {
			continue
		}
		for _, v := range values[k] {
			if len(v) > opts.MaxValueLength {
				return nil, nil, &Error{Param: safeName(k), Code: CodeTooMany, Msg: "value too long"}
			}
			if err := p.param(k, v); err != nil {
				return nil, nil, err
			}
			if p.n > opts.MaxClauses {
				return nil, nil, &Error{Param: safeName(k), Code: CodeTooMany, Msg: "too many search clauses"}
			}
		}
	}
	return p.q, p.warnings, nil
}

type parser struct {
	opts     ParseOptions
	q        *Query
	warnings []Warning
	n        int // clauses, sort keys and includes so far
}

// skip records an unknown or unsupported parameter: a warning, or in strict
// mode an error.
func (p *parser) skip(name, code, msg string) error {
	if p.opts.Strict {
		return &Error{Param: safeName(name), Code: code, Msg: msg}
	}
	p.warnings = append(p.warnings, Warning{Param: safeName(name), Code: code, Msg: msg})
	return nil
}

func invalid(name, msg string) error {
	return &Error{Param: safeName(name), Code: CodeInvalidValue, Msg: msg}
}

func (p *parser) types(vs []string) error {
	if p.q.Type != "" {
		return invalid("_type", "_type applies to system-level search only")
	}
	for _, v := range vs {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !IsResourceType(t) {
				return &Error{Param: "_type", Code: CodeUnknownType, Msg: "unknown resource type"}
			}
			if len(p.q.Types) >= p.opts.MaxValues {
				return &Error{Param: "_type", Code: CodeTooMany, Msg: "too many types"}
			}
			p.q.Types = append(p.q.Types, t)
		}
	}
	return nil
}

func (p *parser) param(key, value string) error {
	name, modifier, _ := strings.Cut(key, ":")
	switch name {
	case "_count":
		return p.count(value)
	case "_offset":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > p.opts.MaxOffset {
			return invalid(key, "expected a non-negative integer within the offset limit")
		}
		p.q.Offset = n
		return nil
	case "_sort":
		return p.sort(value)
	case "_total":
		switch TotalMode(value) {
		case TotalNone, TotalEstimate, TotalAccurate:
			p.q.Total = TotalMode(value)
			return nil
		}
		return invalid(key, "expected none, estimate or accurate")
	case "_summary":
		switch value {
		case "true", "text", "data", "count", "false":
			p.q.Summary = value
			return nil
		}
		return invalid(key, "expected true, text, data, count or false")
	case "_elements":
		for _, e := range strings.Split(value, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			if !isElementName(e) {
				return invalid(key, "expected a comma-separated list of element names")
			}
			p.q.Elements = append(p.q.Elements, e)
		}
		return nil
	case "_include", "_revinclude":
		return p.include(name, modifier, value)
	case "_format", "_pretty":
		return nil
	case "_has":
		return p.chained(key, value)
	case "_query", "_filter", "_list", "_contained", "_containedType", "_score":
		return p.skip(key, CodeUnsupported, "parameter not supported yet")
	}
	if strings.Contains(key, ".") { // subject.name, subject:Patient.name
		return p.chained(key, value)
	}
	prm := p.lookup(name)
	if prm == nil {
		return p.skip(key, CodeUnknownParam, "unknown search parameter")
	}
	return p.clause(key, prm, modifier, value, nil)
}

// clause parses the values of one parameter whose definition is known and
// appends the clause, applied through chain when that is not empty.
func (p *parser) clause(key string, prm *Param, modifier, value string, chain []Link) error {
	switch prm.Type {
	case TypeComposite:
		if len(prm.ComponentParams) == 0 || !Indexed(prm) {
			return p.skip(key, CodeUnsupported, "this composite parameter is not supported")
		}
	case TypeSpecial:
		return p.skip(key, CodeUnsupported, "special parameters are not supported yet")
	}
	if value == "" {
		return nil // an empty value places no constraint
	}
	if err := p.ready(key, prm, chain); err != nil {
		return err
	}
	if IsFullText(prm) {
		return p.fullText(key, prm, modifier, value, chain)
	}
	if err := checkModifier(prm, modifier); err != nil {
		return &Error{Param: safeName(key), Code: CodeInvalidModifier, Msg: err.Error()}
	}
	c := Clause{Param: prm, Modifier: modifier, Chain: chain}
	pieces := splitEscaped(value, ',')
	if len(pieces) > p.opts.MaxValues {
		return &Error{Param: safeName(key), Code: CodeTooMany, Msg: "too many values"}
	}
	for _, piece := range pieces {
		if piece == "" {
			continue
		}
		var v Value
		var err error
		if prm.Type == TypeComposite && modifier != "missing" {
			v, err = compositeValue(prm, piece)
		} else {
			v, err = parseValue(prm, modifier, piece)
		}
		if err != nil {
			return invalid(key, err.Error())
		}
		c.Values = append(c.Values, v)
	}
	if len(c.Values) == 0 {
		return nil
	}
	p.n++
	p.q.Clauses = append(p.q.Clauses, c)
	return nil
}

// fullText parses a _text or _content clause: comma-separated queries (OR),
// each parsed by ParseFullText. No modifier applies (:missing included: every
// resource has content, and a narrative's absence is not what _text asks).
func (p *parser) fullText(key string, prm *Param, modifier, value string, chain []Link) error {
	if modifier != "" {
		return &Error{Param: safeName(key), Code: CodeInvalidModifier, Msg: "full-text parameters take no modifier"}
	}
	c := Clause{Param: prm, Chain: chain}
	pieces := splitEscaped(value, ',')
	if len(pieces) > p.opts.MaxValues {
		return &Error{Param: safeName(key), Code: CodeTooMany, Msg: "too many values"}
	}
	for _, piece := range pieces {
		raw, err := unescape(piece)
		if err != nil {
			return invalid(key, err.Error())
		}
		if strings.TrimSpace(raw) == "" {
			continue
		}
		q, err := ParseFullText(raw)
		if err != nil {
			code := CodeInvalidValue
			if strings.Contains(err.Error(), "too many") {
				code = CodeTooMany
			}
			return &Error{Param: safeName(key), Code: code, Msg: err.Error()}
		}
		c.Values = append(c.Values, Value{Raw: raw, Text: q})
	}
	if len(c.Values) == 0 {
		return nil
	}
	p.n++
	p.q.Clauses = append(p.q.Clauses, c)
	return nil
}

// lookup finds a parameter for the query's type; at system level a
// parameter every type shares, or one all of _type define with one type.
func (p *parser) lookup(name string) *Param {
	if p.q.Type != "" {
		return p.find(p.q.Type, name)
	}
	if len(p.q.Types) == 0 {
		prm := p.find("Patient", name)
		if prm != nil && isShared(prm) {
			return prm
		}
		return nil
	}
	var first *Param
	for _, t := range p.q.Types {
		prm := p.find(t, name)
		if prm == nil || first != nil && prm.Type != first.Type {
			return nil
		}
		if first == nil {
			first = prm
		}
	}
	return first
}

// find looks name up on typ in the built-in registry, then in the custom one.
func (p *parser) find(typ, name string) *Param {
	if prm := Lookup(typ, name); prm != nil {
		return prm
	}
	return p.opts.Custom.Lookup(typ, name)
}

// ready refuses a clause that uses a custom parameter (as the terminal
// parameter or as a chain link) whose reindex has not completed.
func (p *parser) ready(key string, prm *Param, chain []Link) error {
	pending := p.opts.Custom.Pending(prm)
	for _, l := range chain {
		pending = pending || p.opts.Custom.Pending(l.Param)
	}
	if pending {
		return &Error{Param: safeName(key), Code: CodeIndexing, Msg: "the custom search parameter is being indexed; retry when its $reindex job has completed"}
	}
	return nil
}

func isShared(p *Param) bool {
	for _, b := range p.Base {
		if b == "Resource" || b == "DomainResource" {
			return true
		}
	}
	return false
}

func (p *parser) count(value string) error {
	n, err := strconv.Atoi(value)
	if err != nil || n < 0 {
		return invalid("_count", "expected a non-negative integer")
	}
	if n > p.opts.MaxCount {
		p.warnings = append(p.warnings, Warning{Param: "_count", Code: CodeCountClamped, Msg: "_count reduced to the server maximum " + strconv.Itoa(p.opts.MaxCount)})
		n = p.opts.MaxCount
	}
	p.q.Count = n
	return nil
}

func (p *parser) sort(value string) error {
	for _, key := range strings.Split(value, ",") {
		key = strings.TrimSpace(key)
		if key == "" {
			continue
		}
		desc := strings.HasPrefix(key, "-")
		code := strings.TrimPrefix(key, "-")
		prm := p.lookup(code)
		if prm == nil || prm.Type == TypeComposite || prm.Type == TypeSpecial || IsFullText(prm) {
			if err := p.skip("_sort", CodeUnknownParam, "unknown or unsortable sort parameter"); err != nil {
				return err
			}
			continue
		}
		if err := p.ready("_sort", prm, nil); err != nil {
			return err
		}
		p.n++
		if p.n > p.opts.MaxClauses {
			return &Error{Param: "_sort", Code: CodeTooMany, Msg: "too many sort keys"}
		}
		p.q.Sort = append(p.q.Sort, Sort{Param: prm, Descending: desc})
	}
	return nil
}

// include parses Source:param[:Target], or "*", with :iterate (or the R3
// name :recurse) on the parameter name.
func (p *parser) include(name, modifier, value string) error {
	key := name
	if modifier != "" {
		key += ":" + modifier
	}
	inc := Include{}
	switch modifier {
	case "":
	case "iterate", "recurse":
		inc.Iterate = true
	default:
		return &Error{Param: safeName(key), Code: CodeInvalidModifier, Msg: "only :iterate is allowed"}
	}
	if value == "*" {
		inc.Source, inc.Param = "*", "*"
	} else {
		parts := strings.Split(value, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return invalid(key, "expected Source:parameter[:Target]")
		}
		inc.Source, inc.Param = parts[0], parts[1]
		if len(parts) == 3 {
			inc.Target = parts[2]
			if !IsResourceType(inc.Target) {
				return invalid(key, "unknown target resource type")
			}
		}
		if inc.Source != "*" {
			if !IsResourceType(inc.Source) {
				return invalid(key, "unknown source resource type")
			}
			if inc.Param != "*" {
				prm := p.find(inc.Source, inc.Param)
				if prm == nil || prm.Type != TypeReference {
					return invalid(key, "not a reference parameter of the source type")
				}
				if err := p.ready(key, prm, nil); err != nil {
					return err
				}
				if inc.Target != "" && len(prm.Targets) > 0 && !contains(prm.Targets, inc.Target) {
					return invalid(key, "target type is not a target of the parameter")
				}
			}
		}
	}
	p.n++
	if p.n > p.opts.MaxClauses {
		return &Error{Param: safeName(key), Code: CodeTooMany, Msg: "too many includes"}
	}
	if name == "_include" {
		p.q.Include = append(p.q.Include, inc)
	} else {
		p.q.RevInclude = append(p.q.RevInclude, inc)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isElementName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return s != ""
}
