package fhir

import (
	"slices"
	"strconv"
	"strings"
)

// Issue severities and the IssueType codes Validate uses.
const (
	SeverityFatal   = "fatal"
	SeverityError   = "error"
	SeverityWarning = "warning"

	IssueStructure    = "structure"
	IssueRequired     = "required"
	IssueValue        = "value"
	IssueCodeInvalid  = "code-invalid"
	IssueNotSupported = "not-supported"
	IssueTooLong      = "too-long"
)

// maxValidateDepth bounds recursion for objects built in code; Parse already
// limits parsed input to MaxDepth.
const maxValidateDepth = 200

// Validate checks r against the R4 StructureDefinitions: known elements only,
// JSON value kinds, choice types, cardinality, FHIR JSON rules (no empty
// objects, arrays or strings; nulls only to align primitive arrays with
// their "_" arrays), primitive formats, primitive extensions, required
// ValueSet bindings on code elements, and nested, contained and bundled
// resources as their own types. It returns nil when r is valid; issues are
// sorted by location. Diagnostics never include values. Invariants
// (FHIRPath constraints) are not checked here.
func Validate(r *Resource) []Issue {
	if r == nil || r.Object == nil {
		return []Issue{{Severity: SeverityFatal, Code: IssueStructure, Diagnostics: "no resource"}}
	}
	v := validator{m: spec()}
	v.resource(r.Object, 0)
	if len(v.issues) > 1 {
		slices.SortStableFunc(v.issues, func(a, b Issue) int {
			if c := strings.Compare(strings.Join(a.Expression, "|"), strings.Join(b.Expression, "|")); c != 0 {
				return c
			}
			return strings.Compare(a.Diagnostics, b.Diagnostics)
		})
	}
	return v.issues
}

type pathSeg struct {
	name string
	idx  int // -1 when not an array item
}

type validator struct {
	m      *model
	path   []pathSeg
	issues []Issue
}

func (v *validator) push(name string, idx int) { v.path = append(v.path, pathSeg{name, idx}) }
func (v *validator) pop()                      { v.path = v.path[:len(v.path)-1] }

// expr renders the current location as FHIRPath, with extra appended.
func (v *validator) expr(extra string) string {
	var b strings.Builder
	for i, s := range v.path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
		if s.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
		}
	}
	if extra != "" {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(extra)
	}
	return b.String()
}

func (v *validator) add(code, diag, extra string) {
	v.issues = append(v.issues, Issue{Severity: SeverityError, Code: code, Diagnostics: diag, Expression: []string{v.expr(extra)}})
}

// safeName returns key for use in a location when it is the name of some
// element in the specification (misplaced, or misspelt into another real
// name); any other key may be content (a client may send a patient's name as
// a key) and is shown as "?".
func (v *validator) safeName(key string) string {
	if _, ok := v.m.names[strings.TrimPrefix(key, "_")]; ok {
		return key
	}
	return "?"
}

func (v *validator) resource(obj map[string]any, depth int) {
	rt, ok := obj["resourceType"].(string)
	if !ok {
		v.add(IssueStructure, "resourceType missing or not a string", "")
		return
	}
	t := v.m.types[rt]
	if t == nil || t.kind != kindResource || t.abstract {
		v.add(IssueNotSupported, "resourceType is not a known R4 resource type", "")
		return
	}
	if len(v.path) == 0 {
		v.push(rt, -1)
		defer v.pop()
	}
	v.object(obj, t.root, depth+1)
}

func (v *validator) object(obj map[string]any, n *node, depth int) {
	if depth > maxValidateDepth {
		v.add(IssueStructure, "nested too deeply", "")
		return
	}
	if len(obj) == 0 {
		v.add(IssueStructure, "empty object is not valid FHIR JSON", "")
		return
	}
	var small [8]uint64
	seen := small[:]
	if len(n.elems) > 64*len(small) {
		seen = make([]uint64, (len(n.elems)+63)/64)
	}
	type choice struct{ idx, ti int }
	var choices []choice
	for k, val := range obj {
		if k == "resourceType" && n.resource {
			continue
		}
		name, ext := k, false
		if len(k) > 1 && k[0] == '_' {
			name, ext = k[1:], true
		}
		c, ok := n.children[name]
		if !ok {
			v.add(IssueStructure, "unknown element", v.safeName(k))
			continue
		}
		e := n.elems[c.idx]
		if e.Choice {
			dup := false
			for _, ch := range choices {
				if ch.idx == c.idx && ch.ti != c.ti {
					dup = true
				}
			}
			if dup {
				v.add(IssueStructure, "more than one type given for choice element "+e.Path, e.name)
				continue
			}
			choices = append(choices, choice(c))
		}
		seen[c.idx/64] |= 1 << (c.idx % 64)
		if e.Max == 0 {
			v.add(IssueStructure, "element is not allowed here (max 0)", k)
			continue
		}
		if ext {
			v.primitiveExt(e, c.ti, k, val, obj[name], depth)
			continue
		}
		v.element(e, c.ti, name, val, obj, depth)
	}
	for _, idx := range n.required {
		if seen[idx/64]&(1<<(idx%64)) == 0 {
			e := n.elems[idx]
			v.add(IssueRequired, "missing required element "+e.Path, e.name)
		}
	}
}

// element checks the value of one property against its element definition.
func (v *validator) element(e *elemDef, ti int, name string, val any, obj map[string]any, depth int) {
	arr, isArr := val.([]any)
	if !e.many {
		if isArr {
			v.add(IssueStructure, "element "+e.Path+" has max cardinality 1 and must not be an array", name)
			return
		}
		if val == nil {
			v.add(IssueStructure, "null is not a valid value", name)
			return
		}
		v.push(name, -1)
		v.item(e, ti, val, depth)
		v.pop()
		return
	}
	if !isArr {
		v.add(IssueStructure, "element "+e.Path+" repeats and must be an array", name)
		return
	}
	if len(arr) == 0 {
		v.add(IssueStructure, "empty array is not valid FHIR JSON", name)
		return
	}
	if e.Max > 0 && len(arr) > e.Max {
		v.add(IssueStructure, "too many items for "+e.Path+" (max "+strconv.Itoa(e.Max)+")", name)
	}
	if len(arr) < e.Min {
		v.add(IssueRequired, "too few items for "+e.Path+" (min "+strconv.Itoa(e.Min)+")", name)
	}
	var extArr []any
	for i, it := range arr {
		if it == nil {
			if extArr == nil {
				extArr, _ = obj["_"+name].([]any)
			}
			if i >= len(extArr) || extArr[i] == nil {
				v.push(name, i)
				v.add(IssueStructure, "null array item without a matching primitive extension", "")
				v.pop()
			}
			continue
		}
		v.push(name, i)
		v.item(e, ti, it, depth)
		v.pop()
	}
}

// item checks one non-null value; the path is already pushed.
func (v *validator) item(e *elemDef, ti int, val any, depth int) {
	var vt *vtype
	switch {
	case ti >= 0:
		vt = &e.vtypes[ti]
	case e.node != nil:
		obj, ok := val.(map[string]any)
		if !ok {
			v.add(IssueStructure, "expected a JSON object", "")
			return
		}
		v.object(obj, e.node, depth+1)
		return
	case len(e.vtypes) > 0:
		vt = &e.vtypes[0]
	default:
		return
	}
	t := vt.t
	switch t.kind {
	case kindPrimitive:
		if msg := checkPrimitive(t.prim, val); msg != "" {
			code := IssueValue
			if msg == msgTooLong {
				code = IssueTooLong
			}
			v.add(code, msg, "")
			return
		}
		if e.codes != nil && t.prim == primCode {
			if _, ok := e.codes[val.(string)]; !ok {
				v.add(IssueCodeInvalid, "code is not in the required value set "+e.Binding, "")
			}
		}
	case kindResource:
		obj, ok := val.(map[string]any)
		if !ok {
			v.add(IssueStructure, "expected a resource (JSON object)", "")
			return
		}
		if rt, _ := obj["resourceType"].(string); !t.abstract && rt != t.name {
			v.add(IssueStructure, "expected a resource of type "+t.name, "")
			return
		}
		v.resource(obj, depth)
	default:
		obj, ok := val.(map[string]any)
		if !ok {
			v.add(IssueStructure, "expected a JSON object of type "+t.name, "")
			return
		}
		v.object(obj, t.root, depth+1)
	}
}

// primitiveExt checks a "_name" property: the id and extensions of a
// primitive element (an array aligned with the values when it repeats).
func (v *validator) primitiveExt(e *elemDef, ti int, key string, val, base any, depth int) {
	var t *typeDef
	switch {
	case ti >= 0:
		t = e.vtypes[ti].t
	case len(e.vtypes) == 1:
		t = e.vtypes[0].t
	}
	if t == nil || t.kind != kindPrimitive {
		v.add(IssueStructure, "\"_\" properties are only allowed for primitive elements", v.safeName(key))
		return
	}
	if !e.many {
		obj, ok := val.(map[string]any)
		if !ok {
			v.add(IssueStructure, "primitive extension must be a JSON object", key)
			return
		}
		v.push(key, -1)
		v.object(obj, t.root, depth+1)
		v.pop()
		return
	}
	arr, ok := val.([]any)
	if !ok {
		v.add(IssueStructure, "primitive extensions of a repeating element must be an array", key)
		return
	}
	if len(arr) == 0 {
		v.add(IssueStructure, "empty array is not valid FHIR JSON", key)
		return
	}
	var baseArr []any
	if base != nil {
		b, ok := base.([]any)
		if !ok {
			return // the base property's own check reports this
		}
		if len(b) != len(arr) {
			v.add(IssueStructure, "primitive extension array is not aligned with its values", key)
			return
		}
		baseArr = b
	}
	for i, it := range arr {
		v.push(key, i)
		switch x := it.(type) {
		case nil:
			// Both null is reported once, by the value array's check.
			if baseArr == nil {
				v.add(IssueStructure, "null array item without a matching value", "")
			}
		case map[string]any:
			v.object(x, t.root, depth+1)
		default:
			v.add(IssueStructure, "primitive extension must be a JSON object", "")
		}
		v.pop()
	}
}
