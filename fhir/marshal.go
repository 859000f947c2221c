package fhir

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Errors of Marshal and Canonical. They name the problem, never the content.
var (
	ErrNilResource   = errors.New("fhir: nil resource")
	ErrUnsupported   = errors.New("fhir: value of unsupported Go type in resource")
	ErrInvalidNumber = errors.New("fhir: invalid JSON number in resource")
	ErrInvalidUTF8   = errors.New("fhir: invalid UTF-8 in resource string")
	ErrTooDeep       = errors.New("fhir: resource nested too deeply")
)

// Marshal writes r as compact JSON: in every object that carries a
// resourceType (the resource, contained and bundled resources) resourceType
// comes first, then id and meta; all other keys follow in byte order. The
// output is deterministic and parses back to the same object.
func Marshal(r *Resource) ([]byte, error) {
	if r == nil || r.Object == nil {
		return nil, ErrNilResource
	}
	e := encoder{buf: make([]byte, 0, 1024)}
	if err := e.value(r.Object, 0); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// encoder writes JSON. canonical selects seed 002's form: every object's
// keys sorted, and all non-ASCII escaped as Python's json.dumps(ensure_ascii=True) does.
type encoder struct {
	buf       []byte
	canonical bool
}

// maxEncodeDepth bounds recursion for objects built in code rather than parsed.
const maxEncodeDepth = 1000

var leadKeys = []string{"resourceType", "id", "meta"}

func (e *encoder) value(v any, depth int) error {
	if depth > maxEncodeDepth {
		return ErrTooDeep
	}
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case string:
		return e.str(x)
	case json.Number:
		if !validNumber(string(x)) {
			return ErrInvalidNumber
		}
		e.buf = append(e.buf, x...)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return ErrInvalidNumber
		}
		e.buf = strconv.AppendFloat(e.buf, x, 'g', -1, 64)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	case []any:
		e.buf = append(e.buf, '[')
		for i, it := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(it, depth+1); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	case map[string]any:
		return e.object(x, depth)
	default:
		return ErrUnsupported
	}
	return nil
}

func (e *encoder) object(m map[string]any, depth int) error {
	var stack [32]string
	keys := stack[:0]
	lead := 0
	if _, isRes := m["resourceType"].(string); isRes && !e.canonical {
		for _, k := range leadKeys {
			if _, ok := m[k]; ok {
				keys = append(keys, k)
			}
		}
		lead = len(keys)
	}
	for k := range m {
		if lead > 0 && (k == "resourceType" || k == "id" || k == "meta") {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys[lead:])
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.str(k); err != nil {
			return err
		}
		e.buf = append(e.buf, ':')
		if err := e.value(m[k], depth+1); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

const hexDigits = "0123456789abcdef"

func (e *encoder) str(s string) error {
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		if c < 0x80 {
			e.buf = append(e.buf, s[start:i]...)
			switch c {
			case '"', '\\':
				e.buf = append(e.buf, '\\', c)
			case '\n':
				e.buf = append(e.buf, '\\', 'n')
			case '\r':
				e.buf = append(e.buf, '\\', 'r')
			case '\t':
				e.buf = append(e.buf, '\\', 't')
			case '\b':
				e.buf = append(e.buf, '\\', 'b')
			case '\f':
				e.buf = append(e.buf, '\\', 'f')
			default: // other control characters and DEL
				if c == 0x7f && !e.canonical {
					e.buf = append(e.buf, c)
				} else {
					e.buf = appendU4(e.buf, rune(c))
				}
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return ErrInvalidUTF8
		}
		switch {
		case e.canonical:
			e.buf = append(e.buf, s[start:i]...)
			if r >= 0x10000 {
				r1, r2 := utf16Pair(r)
				e.buf = appendU4(appendU4(e.buf, r1), r2)
			} else {
				e.buf = appendU4(e.buf, r)
			}
			start = i + n
		case r == '\u2028' || r == '\u2029':
			// Escaped so the output is also valid JavaScript.
			e.buf = append(e.buf, s[start:i]...)
			e.buf = appendU4(e.buf, r)
			start = i + n
		}
		i += n
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
	return nil
}

func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	p := parser{s: s}
	v, err := p.number()
	return err == nil && v != nil && p.i == len(s)
}
