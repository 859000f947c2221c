package patch

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// JSONPatch is a parsed RFC 6902 JSON Patch document.
type JSONPatch struct {
	ops []jsonOp
}

type jsonOp struct {
	op    string   // add, remove, replace, move, copy, test
	path  []string // decoded reference tokens; nil is the whole document
	from  []string // move and copy
	value any      // add, replace, test
}

// Len is the number of operations.
func (p *JSONPatch) Len() int { return len(p.ops) }

// ParseJSONPatch parses an application/json-patch+json document: an array
// of operation objects. Members other than op, path, from and value are
// ignored (RFC 6902 section 4). Errors are *Error.
func ParseJSONPatch(data []byte) (*JSONPatch, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw []json.RawMessage
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, errAt(CodeInvalid, -1, "", "a JSON Patch is a JSON array of operation objects")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errAt(CodeInvalid, -1, "", "data after the JSON Patch array")
	}
	if len(raw) > MaxOperations {
		return nil, errAt(CodeTooLarge, -1, "", "the patch has more operations than allowed ("+strconv.Itoa(MaxOperations)+")")
	}
	p := &JSONPatch{ops: make([]jsonOp, 0, len(raw))}
	for i, r := range raw {
		op, err := parseJSONOp(i, r)
		if err != nil {
			return nil, err
		}
		p.ops = append(p.ops, op)
	}
	return p, nil
}

func parseJSONOp(i int, r json.RawMessage) (jsonOp, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r, &fields); err != nil || fields == nil {
		return jsonOp{}, errAt(CodeInvalid, i, "", "an operation must be a JSON object")
	}
	str := func(name string) (string, bool, error) {
		v, ok := fields[name]
		if !ok {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", true, errAt(CodeInvalid, i, name, name+" must be a string")
		}
		return s, true, nil
	}
	var op jsonOp
	name, ok, err := str("op")
	if err != nil {
		return op, err
	}
	if !ok {
		return op, errAt(CodeInvalid, i, "op", "op is required")
	}
	switch name {
	case "add", "remove", "replace", "move", "copy", "test":
	default:
		return op, errAt(CodeInvalid, i, "op", "op must be add, remove, replace, move, copy or test")
	}
	op.op = name
	path, ok, err := str("path")
	if err != nil {
		return op, err
	}
	if !ok {
		return op, errAt(CodeInvalid, i, "path", "path is required")
	}
	if op.path, err = parsePointer(path); err != nil {
		return op, errAt(CodeInvalidPath, i, "path", err.Error())
	}
	switch name {
	case "move", "copy":
		from, ok, err := str("from")
		if err != nil {
			return op, err
		}
		if !ok {
			return op, errAt(CodeInvalid, i, "from", "from is required for "+name)
		}
		if op.from, err = parsePointer(from); err != nil {
			return op, errAt(CodeInvalidPath, i, "from", err.Error())
		}
		if name == "move" && isProperPrefix(op.from, op.path) {
			return op, errAt(CodeInvalidPath, i, "from", "a value cannot be moved into one of its children")
		}
	case "add", "replace", "test":
		v, ok := fields["value"]
		if !ok {
			return op, errAt(CodeInvalid, i, "value", "value is required for "+name)
		}
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&op.value); err != nil {
			return op, errAt(CodeInvalid, i, "value", "value is not valid JSON")
		}
	}
	return op, nil
}

// pointerError is a JSON Pointer syntax problem; its text is fixed.
type pointerError string

func (e pointerError) Error() string { return string(e) }

var unescape = strings.NewReplacer("~1", "/", "~0", "~")

// parsePointer decodes an RFC 6901 JSON Pointer into reference tokens.
// "" is the whole document (nil tokens).
func parsePointer(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] != '/' {
		return nil, pointerError("a JSON Pointer is empty or starts with '/'")
	}
	toks := strings.Split(s[1:], "/")
	for i, t := range toks {
		if !strings.Contains(t, "~") {
			continue
		}
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, pointerError("'~' must be followed by '0' or '1' in a JSON Pointer")
			}
		}
		toks[i] = unescape.Replace(t)
	}
	return toks, nil
}

func isProperPrefix(a, b []string) bool {
	if len(a) >= len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// arrayIndex reads an array index token. With appendOK, "-" (one past the
// end) and len are accepted, as add needs.
func arrayIndex(tok string, n int, appendOK bool) (int, bool) {
	if tok == "-" {
		return n, appendOK
	}
	if tok == "" || len(tok) > 9 || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	i := 0
	for k := 0; k < len(tok); k++ {
		c := tok[k]
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	if i > n || (i == n && !appendOK) {
		return 0, false
	}
	return i, true
}

// Apply applies the patch to a copy of doc (any JSON value, numbers as
// json.Number) and returns the result. doc is never modified; on error
// nothing is returned.
func (p *JSONPatch) Apply(doc any) (any, error) {
	doc = deepCopy(doc)
	for i, op := range p.ops {
		var err error
		doc, err = applyJSONOp(doc, op)
		if err != nil {
			if e, ok := err.(*Error); ok {
				e.Op = i
				return nil, e
			}
			return nil, err
		}
	}
	return doc, nil
}

// ApplyTo applies the patch to a copy of a resource object and refuses a
// change of resourceType or id.
func (p *JSONPatch) ApplyTo(resource map[string]any) (map[string]any, error) {
	out, err := p.Apply(resource)
	if err != nil {
		return nil, err
	}
	m, ok := out.(map[string]any)
	if !ok {
		return nil, errAt(CodeInvalid, -1, "", "the patch turns the resource into something other than a JSON object")
	}
	if err := checkImmutable(resource, m, -1); err != nil {
		return nil, err
	}
	return m, nil
}

func applyJSONOp(doc any, op jsonOp) (any, error) {
	switch op.op {
	case "add":
		return add(doc, op.path, deepCopy(op.value), "path")
	case "remove":
		if op.path == nil {
			return nil, errAt(CodeInvalidPath, -1, "path", "the whole document cannot be removed")
		}
		out, _, err := remove(doc, op.path, "path")
		return out, err
	case "replace":
		if op.path == nil {
			return deepCopy(op.value), nil
		}
		if _, err := get(doc, op.path, "path"); err != nil {
			return nil, err
		}
		return update(doc, op.path, "path", func(parent any, tok string) (any, error) {
			switch t := parent.(type) {
			case map[string]any:
				t[tok] = deepCopy(op.value)
				return t, nil
			case []any:
				i, _ := arrayIndex(tok, len(t), false)
				t[i] = deepCopy(op.value)
				return t, nil
			}
			return nil, notFound("path")
		})
	case "move":
		if equalToks(op.from, op.path) {
			_, err := get(doc, op.from, "from")
			return doc, err
		}
		out, v, err := remove(doc, op.from, "from")
		if err != nil {
			return nil, err
		}
		return add(out, op.path, v, "path")
	case "copy":
		v, err := get(doc, op.from, "from")
		if err != nil {
			return nil, err
		}
		return add(doc, op.path, deepCopy(v), "path")
	case "test":
		v, err := get(doc, op.path, "path")
		if err != nil {
			return nil, err
		}
		if !jsonEqual(v, op.value) {
			return nil, errAt(CodeTestFailed, -1, "value", "the value at path is not equal to the test value")
		}
		return doc, nil
	}
	return nil, errAt(CodeInvalid, -1, "op", "unknown op")
}

func equalToks(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func notFound(field string) *Error {
	return errAt(CodePathNotFound, -1, field, "no value exists at "+field)
}

// get returns the value a pointer refers to.
func get(doc any, toks []string, field string) (any, error) {
	cur := doc
	for _, tok := range toks {
		switch t := cur.(type) {
		case map[string]any:
			v, ok := t[tok]
			if !ok {
				return nil, notFound(field)
			}
			cur = v
		case []any:
			i, ok := arrayIndex(tok, len(t), false)
			if !ok {
				return nil, errAt(CodeIndex, -1, field, "array index out of range or malformed in "+field)
			}
			cur = t[i]
		default:
			return nil, notFound(field)
		}
	}
	return cur, nil
}

// update walks to the container of the last token (which must exist) and
// replaces it with what f returns. Maps are changed in place; arrays are
// stored back into their own container because f may grow or shrink them.
func update(node any, toks []string, field string, f func(parent any, tok string) (any, error)) (any, error) {
	if len(toks) == 1 {
		return f(node, toks[0])
	}
	switch t := node.(type) {
	case map[string]any:
		child, ok := t[toks[0]]
		if !ok {
			return nil, notFound(field)
		}
		nc, err := update(child, toks[1:], field, f)
		if err != nil {
			return nil, err
		}
		t[toks[0]] = nc
		return t, nil
	case []any:
		i, ok := arrayIndex(toks[0], len(t), false)
		if !ok {
			return nil, errAt(CodeIndex, -1, field, "array index out of range or malformed in "+field)
		}
		nc, err := update(t[i], toks[1:], field, f)
		if err != nil {
			return nil, err
		}
		t[i] = nc
		return t, nil
	}
	return nil, notFound(field)
}

func add(doc any, toks []string, value any, field string) (any, error) {
	if toks == nil {
		return value, nil
	}
	return update(doc, toks, field, func(parent any, tok string) (any, error) {
		switch t := parent.(type) {
		case map[string]any:
			t[tok] = value
			return t, nil
		case []any:
			i, ok := arrayIndex(tok, len(t), true)
			if !ok {
				return nil, errAt(CodeIndex, -1, field, "array index out of range or malformed in "+field)
			}
			t = append(t, nil)
			copy(t[i+1:], t[i:])
			t[i] = value
			return t, nil
		}
		return nil, errAt(CodePathNotFound, -1, field, "the parent of "+field+" is not an object or array")
	})
}

func remove(doc any, toks []string, field string) (any, any, error) {
	var removed any
	out, err := update(doc, toks, field, func(parent any, tok string) (any, error) {
		switch t := parent.(type) {
		case map[string]any:
			v, ok := t[tok]
			if !ok {
				return nil, notFound(field)
			}
			removed = v
			delete(t, tok)
			return t, nil
		case []any:
			i, ok := arrayIndex(tok, len(t), false)
			if !ok {
				return nil, errAt(CodeIndex, -1, field, "array index out of range or malformed in "+field)
			}
			removed = t[i]
			return append(t[:i], t[i+1:]...), nil
		}
		return nil, notFound(field)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, removed, nil
}
