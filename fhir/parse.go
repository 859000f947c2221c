package fhir

import (
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// Parse decodes one FHIR resource from strict JSON: invalid UTF-8, duplicate
// keys, trailing data, nesting deeper than MaxDepth, a non-object top level and
// a missing or non-string resourceType are errors. Numbers decode as
// json.Number; objects as map[string]any; arrays as []any. The error is a
// *ParseError, whose message never contains input content.
//
// Parse checks syntax only; Validate checks the resource against the
// specification.
func Parse(data []byte, opts ParseOptions) (*Resource, error) {
	obj, err := ParseObject(data, opts)
	if err != nil {
		return nil, err
	}
	return resourceOf(obj)
}

// resourceOf checks a decoded object's resourceType and id.
func resourceOf(obj map[string]any) (*Resource, error) {
	r := &Resource{Object: obj}
	rt, ok := obj["resourceType"].(string)
	if !ok || rt == "" {
		return nil, &ParseError{Offset: 0, Code: ParseCodeResourceType, Msg: "resourceType missing or not a non-empty string"}
	}
	r.Type = rt
	if id, present := obj["id"]; present {
		s, ok := id.(string)
		if !ok {
			return nil, &ParseError{Offset: 0, Code: ParseCodeID, Msg: "id is not a string"}
		}
		r.ID = s
	}
	return r, nil
}

// ParseObject decodes a JSON object with the same strict rules as Parse,
// without requiring a resourceType.
func ParseObject(data []byte, opts ParseOptions) (map[string]any, error) {
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, n := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return nil, &ParseError{Offset: int64(off), Code: ParseCodeUTF8, Msg: "invalid UTF-8"}
	}
	p := parser{s: string(data), max: opts.MaxDepth}
	if p.max <= 0 {
		p.max = DefaultMaxDepth
	}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		if p.i >= len(p.s) {
			return nil, p.fail(ParseCodeSyntax, "empty input")
		}
		return nil, p.fail(ParseCodeNotObject, "top-level value is not a JSON object")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, p.fail(ParseCodeTrailing, "data after the top-level object")
	}
	return v.(map[string]any), nil
}

// parser is a recursive-descent JSON decoder over a string copy of the
// input, so unescaped strings share its memory instead of allocating.
type parser struct {
	s   string
	i   int
	max int
	kv  []kvPair // scratch stack of object members
	arr []any    // scratch stack of array items
}

type kvPair struct {
	k   string
	v   any
	off int
}

func (p *parser) fail(code, msg string) *ParseError {
	return &ParseError{Offset: int64(p.i), Code: code, Msg: msg}
}

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	if p.i >= len(p.s) {
		return nil, p.fail(ParseCodeSyntax, "unexpected end of input")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		if depth+1 > p.max {
			return nil, p.fail(ParseCodeDepth, "nesting too deep")
		}
		return p.object(depth + 1)
	case c == '[':
		if depth+1 > p.max {
			return nil, p.fail(ParseCodeDepth, "nesting too deep")
		}
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == 't':
		return p.lit("true", true)
	case c == 'f':
		return p.lit("false", false)
	case c == 'n':
		return p.lit("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, p.fail(ParseCodeSyntax, "unexpected character")
}

func (p *parser) lit(word string, v any) (any, error) {
	if len(p.s)-p.i < len(word) || p.s[p.i:p.i+len(word)] != word {
		return nil, p.fail(ParseCodeSyntax, "invalid literal")
	}
	p.i += len(word)
	return v, nil
}

func (p *parser) number() (any, error) {
	start := p.i
	if err := p.scanNumber(); err != nil {
		return nil, err
	}
	return json.Number(p.s[start:p.i]), nil
}

// scanNumber moves past one JSON number.
func (p *parser) scanNumber() error {
	s := p.s
	i := p.i
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		p.i = i
		return p.fail(ParseCodeSyntax, "invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.i = i
			return p.fail(ParseCodeSyntax, "invalid number")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.i = i
			return p.fail(ParseCodeSyntax, "invalid number")
		}
	}
	p.i = i
	return nil
}

func (p *parser) object(depth int) (any, error) {
	p.i++ // {
	base := len(p.kv)
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return map[string]any{}, nil
	}
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			p.kv = p.kv[:base]
			return nil, p.fail(ParseCodeSyntax, "expected a string key")
		}
		off := p.i
		k, err := p.str()
		if err != nil {
			p.kv = p.kv[:base]
			return nil, err
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			p.kv = p.kv[:base]
			return nil, p.fail(ParseCodeSyntax, "expected ':'")
		}
		p.i++
		p.ws()
		v, err := p.value(depth)
		if err != nil {
			p.kv = p.kv[:base]
			return nil, err
		}
		p.kv = append(p.kv, kvPair{k: k, v: v, off: off})
		p.ws()
		if p.i >= len(p.s) {
			p.kv = p.kv[:base]
			return nil, p.fail(ParseCodeSyntax, "unexpected end of input in object")
		}
		if p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.s[p.i] == '}' {
			p.i++
			break
		}
		p.kv = p.kv[:base]
		return nil, p.fail(ParseCodeSyntax, "expected ',' or '}'")
	}
	members := p.kv[base:]
	m := make(map[string]any, len(members))
	for _, kv := range members {
		m[kv.k] = kv.v
	}
	// Fewer entries than members means a duplicate; find the first (rare path).
	if len(m) != len(members) {
		seen := make(map[string]struct{}, len(members))
		for _, kv := range members {
			if _, dup := seen[kv.k]; dup {
				p.kv = p.kv[:base]
				return nil, &ParseError{Offset: int64(kv.off), Code: ParseCodeDuplicateKey, Msg: "duplicate key in object"}
			}
			seen[kv.k] = struct{}{}
		}
	}
	clear(members)
	p.kv = p.kv[:base]
	return m, nil
}

func (p *parser) array(depth int) (any, error) {
	p.i++ // [
	base := len(p.arr)
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return []any{}, nil
	}
	for {
		p.ws()
		v, err := p.value(depth)
		if err != nil {
			p.arr = p.arr[:base]
			return nil, err
		}
		p.arr = append(p.arr, v)
		p.ws()
		if p.i >= len(p.s) {
			p.arr = p.arr[:base]
			return nil, p.fail(ParseCodeSyntax, "unexpected end of input in array")
		}
		if p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.s[p.i] == ']' {
			p.i++
			break
		}
		p.arr = p.arr[:base]
		return nil, p.fail(ParseCodeSyntax, "expected ',' or ']'")
	}
	out := make([]any, len(p.arr)-base)
	copy(out, p.arr[base:])
	clear(p.arr[base:])
	p.arr = p.arr[:base]
	return out, nil
}

// str reads a string token. Input is valid UTF-8 (checked up front).
func (p *parser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	s := p.s
	for i := start; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			p.i = i + 1
			return s[start:i], nil
		}
		if c == '\\' {
			p.i = i
			return p.strEscaped(start)
		}
		if c < 0x20 {
			p.i = i
			return "", p.fail(ParseCodeSyntax, "control character in string")
		}
	}
	p.i = len(s)
	return "", p.fail(ParseCodeSyntax, "unterminated string")
}

func (p *parser) strEscaped(start int) (string, error) {
	s := p.s
	buf := make([]byte, 0, p.i-start+16)
	buf = append(buf, s[start:p.i]...)
	i := p.i
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.i = i + 1
			return string(buf), nil
		case c < 0x20:
			p.i = i
			return "", p.fail(ParseCodeSyntax, "control character in string")
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			break
		}
		switch s[i+1] {
		case '"', '\\', '/':
			buf = append(buf, s[i+1])
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				p.i = i
				return "", p.fail(ParseCodeSyntax, "invalid \\u escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2, ok = hex4(s, i+2)
				}
				dec := utf16.DecodeRune(r, r2)
				if !ok || dec == utf8.RuneError {
					p.i = i - 6
					return "", p.fail(ParseCodeUTF8, "unpaired surrogate escape")
				}
				i += 6
				r = dec
			}
			buf = utf8.AppendRune(buf, r)
			continue
		default:
			p.i = i
			return "", p.fail(ParseCodeSyntax, "invalid escape")
		}
		i += 2
	}
	p.i = len(s)
	return "", p.fail(ParseCodeSyntax, "unterminated string")
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// ParseMembers decodes only the top-level members of a resource that keep
// accepts (resourceType and id always), moving past the others without
// building them: for callers that read a few members of a large stored
// body, such as the access decision of a search result. Syntax and UTF-8
// are checked throughout as by Parse; duplicate keys are detected among
// the decoded members only.
func ParseMembers(data []byte, keep func(key string) bool, opts ParseOptions) (*Resource, error) {
	if !utf8.Valid(data) {
		return Parse(data, opts) // the same error, with its offset
	}
	p := parser{s: string(data), max: opts.MaxDepth}
	if p.max <= 0 {
		p.max = DefaultMaxDepth
	}
	p.ws()
	if p.i >= len(p.s) {
		return nil, p.fail(ParseCodeSyntax, "empty input")
	}
	if p.s[p.i] != '{' {
		return nil, p.fail(ParseCodeNotObject, "top-level value is not a JSON object")
	}
	obj, err := p.members(keep)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, p.fail(ParseCodeTrailing, "data after the top-level object")
	}
	return resourceOf(obj)
}

// members is object at depth 1, decoding the members keep accepts.
func (p *parser) members(keep func(string) bool) (map[string]any, error) {
	p.i++ // {
	m := map[string]any{}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.fail(ParseCodeSyntax, "expected a string key")
		}
		off := p.i
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.fail(ParseCodeSyntax, "expected ':'")
		}
		p.i++
		p.ws()
		if k == "resourceType" || k == "id" || keep(k) {
			v, err := p.value(1)
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, &ParseError{Offset: int64(off), Code: ParseCodeDuplicateKey, Msg: "duplicate key in object"}
			}
			m[k] = v
		} else if err := p.skip(1); err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.s) {
			return nil, p.fail(ParseCodeSyntax, "unexpected end of input in object")
		}
		if p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.s[p.i] == '}' {
			p.i++
			return m, nil
		}
		return nil, p.fail(ParseCodeSyntax, "expected ',' or '}'")
	}
}

// skip moves past one value, checking its syntax, without building it.
func (p *parser) skip(depth int) error {
	if p.i >= len(p.s) {
		return p.fail(ParseCodeSyntax, "unexpected end of input")
	}
	switch c := p.s[p.i]; {
	case c == '{' || c == '[':
		if depth+1 > p.max {
			return p.fail(ParseCodeDepth, "nesting too deep")
		}
		return p.skipContainer(depth+1, c == '{')
	case c == '"':
		return p.skipStr()
	case c == 't':
		_, err := p.lit("true", nil)
		return err
	case c == 'f':
		_, err := p.lit("false", nil)
		return err
	case c == 'n':
		_, err := p.lit("null", nil)
		return err
	case c == '-' || c >= '0' && c <= '9':
		return p.scanNumber()
	}
	return p.fail(ParseCodeSyntax, "unexpected character")
}

func (p *parser) skipContainer(depth int, object bool) error {
	closer := byte(']')
	if object {
		closer = '}'
	}
	p.i++
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == closer {
		p.i++
		return nil
	}
	for {
		p.ws()
		if object {
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return p.fail(ParseCodeSyntax, "expected a string key")
			}
			if err := p.skipStr(); err != nil {
				return err
			}
			p.ws()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return p.fail(ParseCodeSyntax, "expected ':'")
			}
			p.i++
			p.ws()
		}
		if err := p.skip(depth); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.s) {
			return p.fail(ParseCodeSyntax, "unexpected end of input")
		}
		if p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.s[p.i] == closer {
			p.i++
			return nil
		}
		return p.fail(ParseCodeSyntax, "expected ',' or a closing bracket")
	}
}

// skipStr moves past a string token; escapes are checked as by str.
func (p *parser) skipStr() error {
	s := p.s
	for i := p.i + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			p.i = i + 1
			return nil
		case c == '\\':
			// The rare escaped string: decode it for its checks.
			_, err := p.str()
			return err
		case c < 0x20:
			p.i = i
			return p.fail(ParseCodeSyntax, "control character in string")
		}
	}
	p.i = len(s)
	return p.fail(ParseCodeSyntax, "unterminated string")
}
