package patch

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"

	"phix/fhir"
	"phix/fhir/fhirpath"
)

// FHIRPathPatch is a parsed FHIR R4 FHIRPath Patch: the operations of a
// Parameters resource, paths compiled.
type FHIRPathPatch struct {
	ops []fpOp
}

type fpOp struct {
	typ  string // add, insert, delete, replace, move
	path *fhirpath.Expression
	name string
	val  *pvalue
	// index (insert), source and destination (move)
	index, source, destination int
}

// pvalue is an operation's value: a typed value[x] (with the "_valueX"
// sibling of a primitive), a resource, or the parts of an anonymous
// (backbone) structure.
type pvalue struct {
	typ   string         // FHIR type of value[x] ("date", "HumanName") or the resourceType
	json  any            // the value
	ext   map[string]any // primitive id/extension
	parts []namedValue   // anonymous type
}

type namedValue struct {
	name string
	val  *pvalue
}

// Len is the number of operations.
func (p *FHIRPathPatch) Len() int { return len(p.ops) }

// ParseFHIRPathPatchJSON parses a Parameters resource in FHIR JSON and then
// its operations (ParseFHIRPathPatch).
func ParseFHIRPathPatchJSON(data []byte) (*FHIRPathPatch, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errAt(CodeInvalid, -1, "", "a FHIRPath Patch is a Parameters resource in FHIR JSON")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errAt(CodeInvalid, -1, "", "data after the Parameters resource")
	}
	return ParseFHIRPathPatch(m)
}

// ParseFHIRPathPatch reads the operations of a Parameters resource (FHIR
// JSON object, numbers as json.Number). Every path is compiled here, so an
// invalid FHIRPath fails before anything is applied, with its position.
func ParseFHIRPathPatch(params map[string]any) (*FHIRPathPatch, error) {
	if rt, _ := params["resourceType"].(string); rt != "Parameters" {
		return nil, errAt(CodeInvalid, -1, "resourceType", "a FHIRPath Patch is a Parameters resource")
	}
	raw, ok := params["parameter"]
	if !ok {
		return &FHIRPathPatch{}, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, errAt(CodeInvalid, -1, "parameter", "Parameters.parameter must be an array")
	}
	if len(list) > MaxOperations {
		return nil, errAt(CodeTooLarge, -1, "", "the patch has more operations than allowed ("+strconv.Itoa(MaxOperations)+")")
	}
	p := &FHIRPathPatch{ops: make([]fpOp, 0, len(list))}
	for i, v := range list {
		op, err := parseFPOp(i, v)
		if err != nil {
			return nil, err
		}
		p.ops = append(p.ops, op)
	}
	return p, nil
}

func parseFPOp(i int, v any) (fpOp, error) {
	var op fpOp
	pm, ok := v.(map[string]any)
	if !ok {
		return op, errAt(CodeInvalid, i, "", "a parameter must be an object")
	}
	if n, _ := pm["name"].(string); n != "operation" {
		return op, errAt(CodeInvalid, i, "name", "every parameter of a FHIRPath Patch is named \"operation\"")
	}
	parts, ok := pm["part"].([]any)
	if !ok {
		return op, errAt(CodeInvalid, i, "part", "an operation needs its parts (type, path, ...)")
	}
	seen := map[string]map[string]any{}
	for _, x := range parts {
		part, ok := x.(map[string]any)
		if !ok {
			return op, errAt(CodeInvalid, i, "part", "a part must be an object")
		}
		name, _ := part["name"].(string)
		switch name {
		case "type", "path", "name", "value", "index", "source", "destination":
		default:
			return op, errAt(CodeInvalid, i, "part", "unknown part; allowed: type, path, name, value, index, source, destination")
		}
		if _, dup := seen[name]; dup {
			return op, errAt(CodeInvalid, i, name, "the part appears more than once")
		}
		seen[name] = part
	}
	str := func(name, valueKey string) (string, bool, error) {
		part, ok := seen[name]
		if !ok {
			return "", false, nil
		}
		s, ok := part[valueKey].(string)
		if !ok {
			return "", true, errAt(CodeInvalid, i, name, "the "+name+" part needs "+valueKey)
		}
		return s, true, nil
	}
	typ, ok, err := str("type", "valueCode")
	if err != nil {
		return op, err
	}
	if !ok {
		return op, errAt(CodeInvalid, i, "type", "the type part is required")
	}
	var required, allowed []string
	switch typ {
	case "add":
		required = []string{"path", "name", "value"}
	case "insert":
		required = []string{"path", "value", "index"}
	case "delete":
		required = []string{"path"}
	case "replace":
		required = []string{"path", "value"}
	case "move":
		required = []string{"path", "source", "destination"}
	default:
		return op, errAt(CodeInvalid, i, "type", "type must be add, insert, delete, replace or move")
	}
	op.typ = typ
	allowed = append(required, "type")
	for _, r := range required {
		if _, ok := seen[r]; !ok {
			return op, errAt(CodeInvalid, i, r, "the "+r+" part is required for "+typ)
		}
	}
	for name := range seen {
		if !contains(allowed, name) {
			return op, errAt(CodeInvalid, i, name, "the "+name+" part is not used by "+typ)
		}
	}
	path, _, err := str("path", "valueString")
	if err != nil {
		return op, err
	}
	// Compile, not Cached: client paths are rarely repeated and would evict
	// the server's own expressions (search, invariants) from the shared cache.
	if op.path, err = fhirpath.Compile(path); err != nil {
		return op, fromFHIRPath(CodeInvalidPath, i, "path", err)
	}
	if _, ok := seen["name"]; ok {
		if op.name, _, err = str("name", "valueString"); err != nil {
			return op, err
		}
		if !validName(op.name) {
			return op, errAt(CodeInvalid, i, "name", "name must be an element name")
		}
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"index", &op.index}, {"source", &op.source}, {"destination", &op.destination}} {
		part, ok := seen[f.name]
		if !ok {
			continue
		}
		n, ok := part["valueInteger"].(json.Number)
		if !ok {
			return op, errAt(CodeInvalid, i, f.name, "the "+f.name+" part needs valueInteger")
		}
		v, err := strconv.Atoi(string(n))
		if err != nil || v < 0 {
			return op, errAt(CodeIndex, i, f.name, f.name+" must be a non-negative integer")
		}
		*f.dst = v
	}
	if part, ok := seen["value"]; ok {
		if op.val, err = parseValue(part, i, 0); err != nil {
			return op, err
		}
	}
	return op, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// validName accepts a FHIR element name: a letter, then letters and digits.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// maxValueDepth bounds the nesting of anonymous values (parts in parts).
const maxValueDepth = 32

// parseValue reads a value part: value[x], resource, or nested parts.
func parseValue(part map[string]any, op, depth int) (*pvalue, error) {
	if depth > maxValueDepth {
		return nil, errAt(CodeInvalid, op, "value", "value parts nested too deeply")
	}
	var v *pvalue
	for k, x := range part {
		switch {
		case k == "name" || k == "id" || k == "extension" || k == "modifierExtension" || strings.HasPrefix(k, "_value"):
			continue
		case strings.HasPrefix(k, "value") && len(k) > 5:
			if v != nil {
				return nil, errAt(CodeInvalid, op, "value", "a value part has one value[x], resource or part")
			}
			t := k[5:]
			if lt := lowerFirst(t); fhir.IsPrimitiveType(lt) {
				t = lt
			}
			v = &pvalue{typ: t, json: x}
			if ext, ok := part["_"+k].(map[string]any); ok {
				v.ext = ext
			}
		case k == "resource":
			if v != nil {
				return nil, errAt(CodeInvalid, op, "value", "a value part has one value[x], resource or part")
			}
			m, ok := x.(map[string]any)
			rt, _ := m["resourceType"].(string)
			if !ok || !fhir.IsResourceType(rt) {
				return nil, errAt(CodeInvalidValue, op, "value", "part.resource must be a resource")
			}
			v = &pvalue{typ: rt, json: m}
		case k == "part":
			if v != nil {
				return nil, errAt(CodeInvalid, op, "value", "a value part has one value[x], resource or part")
			}
			list, ok := x.([]any)
			if !ok {
				return nil, errAt(CodeInvalid, op, "value", "part must be an array")
			}
			v = &pvalue{}
			for _, y := range list {
				pm, ok := y.(map[string]any)
				if !ok {
					return nil, errAt(CodeInvalid, op, "value", "a part must be an object")
				}
				name, _ := pm["name"].(string)
				if !validName(name) {
					return nil, errAt(CodeInvalid, op, "value", "each part of an anonymous value is named by its element")
				}
				sub, err := parseValue(pm, op, depth+1)
				if err != nil {
					return nil, err
				}
				v.parts = append(v.parts, namedValue{name, sub})
			}
		default:
			return nil, errAt(CodeInvalid, op, "value", "unexpected member in a value part")
		}
	}
	if v == nil {
		return nil, errAt(CodeInvalid, op, "value", "the value part has no value[x], resource or part")
	}
	if v.parts == nil && v.typ == "" {
		return nil, errAt(CodeInvalid, op, "value", "the value part has no value[x], resource or part")
	}
	return v, nil
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]-'A'+'a') + s[1:]
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// ApplyTo applies the operations in order to a copy of the resource. Empty
// objects and arrays left behind by deletions are pruned, as FHIR JSON
// allows none.
func (p *FHIRPathPatch) ApplyTo(resource map[string]any) (map[string]any, error) {
	doc := deepCopy(resource).(map[string]any)
	for i := range p.ops {
		if err := p.ops[i].apply(doc); err != nil {
			if e, ok := err.(*Error); ok && e.Op < 0 {
				e.Op = i
			}
			return nil, err
		}
	}
	for k, v := range doc {
		if prune(v) {
			delete(doc, k)
		}
	}
	if err := checkImmutable(resource, doc, -1); err != nil {
		return nil, err
	}
	return doc, nil
}

// prune removes empty objects and arrays below v (arrays lose the null
// entries that neither a value nor its "_x" sibling fills) and reports
// whether v itself is now empty.
func prune(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		// Children first; list members that become empty turn into nulls,
		// so a value list and its "_x" list keep their alignment.
		for k, x := range t {
			if list, ok := x.([]any); ok {
				for i, y := range list {
					if prune(y) {
						list[i] = nil
					}
				}
				continue
			}
			if prune(x) {
				delete(t, k)
			}
		}
		// Then drop the positions that neither list fills any more.
		for k, x := range t {
			list, ok := x.([]any)
			if !ok || strings.HasPrefix(k, "_") {
				continue
			}
			exts, _ := t["_"+k].([]any)
			if !hasHole(list, exts) {
				continue
			}
			var vals, keep []any
			for i, y := range list {
				var e any
				if i < len(exts) {
					e = exts[i]
				}
				if y == nil && e == nil {
					continue
				}
				vals = append(vals, y)
				keep = append(keep, e)
			}
			setList(t, k, vals, keep)
		}
		// An "_x" list of nulls says nothing.
		for k, x := range t {
			if list, ok := x.([]any); ok && strings.HasPrefix(k, "_") && allNull(list) {
				delete(t, k)
			}
		}
		return len(t) == 0
	case []any:
		empty := true
		for i, x := range t {
			if prune(x) {
				t[i] = nil
				continue
			}
			if x != nil {
				empty = false
			}
		}
		return empty
	}
	return false
}

func allNull(list []any) bool {
	for _, e := range list {
		if e != nil {
			return false
		}
	}
	return true
}

// hasHole reports whether some index of a value list is null in both the
// list and its "_x" list (a position nothing fills any more).
func hasHole(vals, exts []any) bool {
	for i, v := range vals {
		if v == nil && (i >= len(exts) || exts[i] == nil) {
			return true
		}
	}
	return len(vals) == 0
}

func (op *fpOp) eval(doc map[string]any) (fhirpath.Collection, error) {
	out, err := op.path.Evaluate(nil, fhirpath.Collection{fhirpath.NewResourceItem(doc)})
	if err != nil {
		return nil, fromFHIRPath(CodeEvaluation, -1, "path", err)
	}
	for _, it := range out {
		if _, _, _, ok := it.Location(); !ok && !isRoot(it, doc) {
			return nil, errAt(CodeInvalidPath, -1, "path", "the path selects a value that is not an element of the resource")
		}
	}
	return out, nil
}

func isRoot(it fhirpath.Item, doc map[string]any) bool {
	m, ok := it.Raw().(map[string]any)
	return ok && sameMap(m, doc)
}

func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func (op *fpOp) apply(doc map[string]any) error {
	items, err := op.eval(doc)
	if err != nil {
		return err
	}
	switch op.typ {
	case "delete":
		switch len(items) {
		case 0:
			return nil // deleting nothing is not an error
		case 1:
		default:
			return errAt(CodeNotSingle, -1, "path", "delete selects more than one element; only a single element can be deleted")
		}
		par, key, idx, ok := items[0].Location()
		if !ok {
			return errAt(CodeInvalidPath, -1, "path", "the resource itself cannot be deleted")
		}
		deleteAt(par, key, idx)
		return nil
	case "add":
		it, err := single(items, "add")
		if err != nil {
			return err
		}
		target, ok := it.Raw().(map[string]any)
		defPath := it.DefinitionPath()
		if !ok {
			// A primitive: its id and extensions live in the "_name" sibling.
			par, key, idx, located := it.Location()
			if !located || !fhir.IsPrimitiveType(it.FHIRType()) {
				return errAt(CodeInvalidPath, -1, "path", "add needs a path to an element")
			}
			target, defPath = primitiveSibling(par, key, idx), "Element"
		}
		return addElement(target, defPath, op.name, op.val)
	case "replace":
		it, err := single(items, "replace")
		if err != nil {
			return err
		}
		return replaceElement(doc, it, op.val)
	case "insert", "move":
		if len(items) == 0 {
			return errAt(CodePathNotFound, -1, "path", "no content found at path; an empty list cannot be located (use add)")
		}
		par, key, _, ok := items[0].Location()
		if !ok {
			return errAt(CodeInvalidPath, -1, "path", op.typ+" needs a path to a list")
		}
		for _, it := range items {
			p, k, idx, ok := it.Location()
			if !ok || idx < 0 || k != key || !sameMap(p, par) {
				return errAt(CodeNotSingle, -1, "path", op.typ+" needs a path that selects the items of one list")
			}
		}
		vals, exts := listAt(par, key)
		if op.typ == "insert" {
			if op.index > len(vals) {
				return errAt(CodeIndex, -1, "index", "index is past the end of the list")
			}
			v, e, err := buildValue(op.val, items[0].DefinitionPath(), items[0].FHIRType(), nil)
			if err != nil {
				return err
			}
			vals = insertAt(vals, op.index, v)
			if e != nil || exts != nil {
				exts = insertAt(padTo(exts, len(vals)-1), op.index, anyOrNil(e))
			}
			setList(par, key, vals, exts)
			return nil
		}
		if op.source >= len(vals) {
			return errAt(CodeIndex, -1, "source", "source is past the end of the list")
		}
		if op.destination >= len(vals) {
			return errAt(CodeIndex, -1, "destination", "destination is past the end of the list")
		}
		v := vals[op.source]
		vals = insertAt(append(vals[:op.source:op.source], vals[op.source+1:]...), op.destination, v)
		if exts != nil {
			exts = padTo(exts, len(vals))
			e := exts[op.source]
			exts = insertAt(append(exts[:op.source:op.source], exts[op.source+1:]...), op.destination, e)
		}
		setList(par, key, vals, exts)
		return nil
	}
	return errAt(CodeInvalid, -1, "type", "unknown operation type")
}

// primitiveSibling returns (creating it) the object holding the id and
// extensions of the primitive at par[key] or par[key][idx]. An object left
// empty is pruned after the operations.
func primitiveSibling(par map[string]any, key string, idx int) map[string]any {
	if idx < 0 {
		m, ok := par["_"+key].(map[string]any)
		if !ok {
			m = map[string]any{}
			par["_"+key] = m
		}
		return m
	}
	vals, exts := listAt(par, key)
	exts = padTo(exts, len(vals))
	m, ok := exts[idx].(map[string]any)
	if !ok {
		m = map[string]any{}
		exts[idx] = m
	}
	par["_"+key] = exts
	return m
}

func single(items fhirpath.Collection, what string) (fhirpath.Item, error) {
	switch len(items) {
	case 0:
		return fhirpath.Item{}, errAt(CodePathNotFound, -1, "path", "no content found at path when trying to "+what)
	case 1:
		return items[0], nil
	}
	return fhirpath.Item{}, errAt(CodeNotSingle, -1, "path", "the path selects "+strconv.Itoa(len(items))+" elements; "+what+" needs exactly one")
}

func anyOrNil(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

func insertAt(list []any, i int, v any) []any {
	list = append(list, nil)
	copy(list[i+1:], list[i:])
	list[i] = v
	return list
}

func padTo(list []any, n int) []any {
	for len(list) < n {
		list = append(list, nil)
	}
	return list
}

// listAt returns the list under key and its aligned "_key" list (nil when
// there is none). A single value is read as a list of one.
func listAt(par map[string]any, key string) (vals, exts []any) {
	switch v := par[key].(type) {
	case []any:
		vals = append([]any(nil), v...)
	case nil:
	default:
		vals = []any{v}
	}
	switch e := par["_"+key].(type) {
	case []any:
		exts = append([]any(nil), e...)
	case map[string]any:
		exts = []any{e}
	}
	if len(exts) > len(vals) {
		vals = padTo(vals, len(exts))
	}
	return vals, exts
}

// setList stores a list and its "_key" list, dropping empty ones.
func setList(par map[string]any, key string, vals, exts []any) {
	if len(vals) == 0 {
		delete(par, key)
		delete(par, "_"+key)
		return
	}
	allNil := true
	for _, e := range exts {
		if e != nil {
			allNil = false
		}
	}
	if allNil {
		delete(par, "_"+key)
	} else {
		par["_"+key] = padTo(exts, len(vals))
	}
	hasValue := false
	for _, v := range vals {
		if v != nil {
			hasValue = true
		}
	}
	if hasValue || !allNil {
		// Values with nulls where only extensions exist, as FHIR JSON aligns them.
		par[key] = vals
	} else {
		delete(par, key)
	}
}

// deleteAt removes par[key] (idx < 0) or par[key][idx], with the
// primitive-extension sibling.
func deleteAt(par map[string]any, key string, idx int) {
	if idx < 0 {
		delete(par, key)
		delete(par, "_"+key)
		return
	}
	vals, exts := listAt(par, key)
	if idx >= len(vals) {
		return
	}
	vals = append(vals[:idx], vals[idx+1:]...)
	if idx < len(exts) {
		exts = append(exts[:idx], exts[idx+1:]...)
	}
	setList(par, key, vals, exts)
}

// addElement adds name = value to target, whose definition path is
// defPath: appended when the element repeats, set when it does not (and is
// absent).
func addElement(target map[string]any, defPath, name string, val *pvalue) error {
	info, _, ok := fhir.LookupElement(defPath, name)
	if !ok {
		return errAt(CodeUnknownElement, -1, "name", "the target's type has no element of this name")
	}
	key := name
	if info.Choice {
		if val.parts != nil || !typeAllowed(val.typ, info.Types) {
			return errAt(CodeInvalidValue, -1, "value", "the value's type is not one of the element's types")
		}
		key = name + upperFirst(val.typ)
	}
	_, concrete, _ := fhir.LookupElement(defPath, key)
	v, ext, err := buildValue(val, concrete, concrete, info.Types)
	if err != nil {
		return err
	}
	if info.Max != 1 {
		vals, exts := listAt(target, key)
		vals = append(vals, v)
		if ext != nil || exts != nil {
			exts = append(padTo(exts, len(vals)-1), anyOrNil(ext))
		}
		setList(target, key, vals, exts)
		return nil
	}
	if info.Choice {
		for k := range target {
			if strings.HasPrefix(k, name) && k != name && isUpper(k[len(name)]) {
				if _, _, ok := fhir.LookupElement(defPath, k); ok {
					return errAt(CodeElementExists, -1, "name", "the element already has a value; use replace")
				}
			}
		}
	}
	if _, exists := target[key]; exists {
		return errAt(CodeElementExists, -1, "name", "the element already has a value; use replace")
	}
	if _, exists := target["_"+key]; exists {
		return errAt(CodeElementExists, -1, "name", "the element already has a value; use replace")
	}
	target[key] = v
	if ext != nil {
		target["_"+key] = ext
	}
	return nil
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// replaceElement replaces the selected element with val.
func replaceElement(doc map[string]any, it fhirpath.Item, val *pvalue) error {
	par, key, idx, ok := it.Location()
	if !ok {
		return errAt(CodeInvalidPath, -1, "path", "the resource itself cannot be replaced")
	}
	newKey := key
	cur := it.FHIRType()
	defPath := it.DefinitionPath()
	if val.parts == nil && val.typ != cur {
		// A different datatype: a choice element changes type and JSON name
		// (valueQuantity -> valueString); another element keeps its name if
		// the value fits it (a string for a code is left to validation).
		bothPrimitive := fhir.IsPrimitiveType(val.typ) && fhir.IsPrimitiveType(cur)
		parentPath, found := definitionPathOf(doc, par)
		var info *fhir.ElementInfo
		ok := false
		if found {
			info, _, ok = fhir.LookupElement(parentPath, key)
		}
		switch {
		case ok && info.Choice:
			if !typeAllowed(val.typ, info.Types) {
				return errAt(CodeInvalidValue, -1, "value", "the value's type is not one of the element's types")
			}
			base := info.Path[strings.LastIndexByte(info.Path, '.')+1:]
			newKey = strings.TrimSuffix(base, "[x]") + upperFirst(val.typ)
			_, defPath, _ = fhir.LookupElement(parentPath, newKey)
			cur = val.typ
		case bothPrimitive, ok && typeAllowed(val.typ, info.Types):
		default:
			return errAt(CodeInvalidValue, -1, "value", "the value's type does not fit the element")
		}
	}
	v, ext, err := buildValue(val, defPath, cur, nil)
	if err != nil {
		return err
	}
	if idx < 0 {
		if newKey != key {
			delete(par, key)
		}
		delete(par, "_"+key)
		par[newKey] = v
		if ext != nil {
			par["_"+newKey] = ext
		}
		return nil
	}
	vals, exts := listAt(par, key)
	if idx >= len(vals) {
		return errAt(CodePathNotFound, -1, "path", "no content found at path when trying to replace")
	}
	vals[idx] = v
	if ext != nil || exts != nil {
		exts = padTo(exts, len(vals))
		exts[idx] = anyOrNil(ext)
	}
	setList(par, key, vals, exts)
	return nil
}

// typeAllowed reports whether a value of type t fits an element of one of
// types (a specialisation such as Age fits Quantity; a resource fits
// Resource).
func typeAllowed(t string, types []string) bool {
	for _, want := range types {
		if want == "*" || typeFits(t, want) {
			return true
		}
	}
	return false
}

func typeFits(t, want string) bool {
	if fhir.IsResourceType(t) && (want == "Resource" || want == "DomainResource" || want == t) {
		return true
	}
	for x, n := t, 0; x != "" && n < 8; x, n = fhir.BaseType(x), n+1 {
		if x == want {
			return true
		}
	}
	// A constrained type accepts its base (an element of SimpleQuantity takes a Quantity).
	return fhir.BaseType(want) == t
}

// buildValue turns a parsed value into JSON for an element whose structure
// path is defPath (for anonymous parts) and whose type is elemType (checked
// against value[x]; "" when unknown). types lists the element's declared
// types when known.
func buildValue(val *pvalue, defPath, elemType string, types []string) (any, map[string]any, error) {
	if val.parts == nil {
		if len(types) == 0 && elemType != "" {
			types = []string{elemType}
		}
		if len(types) > 0 && !typeAllowed(val.typ, types) && !(fhir.IsPrimitiveType(val.typ) && allPrimitive(types)) {
			return nil, nil, errAt(CodeInvalidValue, -1, "value", "the value's type does not fit the element")
		}
		return deepCopy(val.json), copyExt(val.ext), nil
	}
	if defPath == "" || fhir.IsPrimitiveType(defPath) {
		return nil, nil, errAt(CodeInvalidValue, -1, "value", "an anonymous (parts) value needs a complex element")
	}
	obj := map[string]any{}
	for _, p := range val.parts {
		if err := addElement(obj, defPath, p.name, p.val); err != nil {
			if e, ok := err.(*Error); ok && e.Code == CodeElementExists {
				e.Field = "value"
				e.Msg = "an anonymous value names a non-repeating element twice"
			}
			return nil, nil, err
		}
	}
	return obj, nil, nil
}

func allPrimitive(types []string) bool {
	for _, t := range types {
		if !fhir.IsPrimitiveType(t) {
			return false
		}
	}
	return len(types) > 0
}

func copyExt(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopy(m).(map[string]any)
}

// definitionPathOf finds the definition path of the object target inside
// the resource doc by walking it with the type tables. Only a replace that
// changes a choice element's type needs it.
func definitionPathOf(doc, target map[string]any) (string, bool) {
	rt, _ := doc["resourceType"].(string)
	return findPath(doc, rt, target, 0)
}

func findPath(obj map[string]any, path string, target map[string]any, depth int) (string, bool) {
	if sameMap(obj, target) {
		return path, true
	}
	if depth > 64 {
		return "", false
	}
	for k, v := range obj {
		if strings.HasPrefix(k, "_") {
			continue
		}
		_, child, ok := fhir.LookupElement(path, k)
		if !ok || child == "" || fhir.IsPrimitiveType(child) {
			continue
		}
		var kids []any
		switch t := v.(type) {
		case map[string]any:
			kids = []any{t}
		case []any:
			kids = t
		}
		for _, x := range kids {
			m, ok := x.(map[string]any)
			if !ok {
				continue
			}
			cp := child
			if rt, ok := m["resourceType"].(string); ok && (child == "Resource" || child == "DomainResource") {
				cp = rt
			}
			if p, ok := findPath(m, cp, target, depth+1); ok {
				return p, true
			}
		}
	}
	return "", false
}
