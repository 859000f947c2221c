package fhirpath

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// state is one evaluation in progress.
type state struct {
	ec       *EvalContext
	ctx      context.Context
	src      string
	steps    int
	maxSteps int
	maxColl  int
	maxDepth int
	depth    int
	input    Collection
	now      time.Time
	nowSet   bool
	arena    Collection // backing store for small result collections
	scopes   [4]scope   // iteration scopes for the first nesting levels
	nscopes  int
}

// pushScope returns a scope for an iterating function; the first levels
// come from the state so the common case allocates nothing.
func (st *state) pushScope() *scope {
	st.nscopes++
	if st.nscopes <= len(st.scopes) {
		return &st.scopes[st.nscopes-1]
	}
	return &scope{}
}

func (st *state) popScope() {
	if st.nscopes <= len(st.scopes) {
		st.scopes[st.nscopes-1] = scope{}
	}
	st.nscopes--
}

// allocN returns an empty collection with capacity n carved from the
// evaluation's arena, saving one heap allocation per small result. The
// capacity is exact, so appending beyond n copies instead of overwriting a
// neighbour.
func (st *state) allocN(n int) Collection {
	if n > 16 {
		return make(Collection, 0, n)
	}
	if cap(st.arena)-len(st.arena) < n {
		size := 2 * cap(st.arena)
		size = max(min(size, 64), 16)
		st.arena = make(Collection, 0, size)
	}
	l := len(st.arena)
	st.arena = st.arena[:l+n]
	return st.arena[l : l : l+n]
}

// appendJSONTo is appendJSON with the first allocation taken from the arena.
func (st *state) appendJSONTo(out Collection, par map[string]any, key *string, raw, ext any, typ, path string) Collection {
	if out == nil {
		switch v := raw.(type) {
		case []any:
			out = st.allocN(len(v))
		case nil:
		default:
			out = st.allocN(1)
		}
	}
	return appendJSON(out, par, key, raw, ext, typ, path)
}

// scope is what $this, $index and $total mean at a point of the expression.
type scope struct {
	this     Collection
	index    int
	hasIndex bool
	total    Collection
	hasTotal bool
}

func (st *state) errAt(n node, kind ErrorKind, code, format string, args ...any) *Error {
	return newErr(kind, code, positionOf(st.src, n.pos()), format, args...)
}

func (st *state) step(n node, k int) error {
	st.steps += k
	if st.steps > st.maxSteps {
		return st.errAt(n, KindLimit, CodeStepLimit, "evaluation exceeded %d steps", st.maxSteps)
	}
	if st.steps&1023 < k && st.ctx != nil {
		if err := st.ctx.Err(); err != nil {
			return st.errAt(n, KindLimit, CodeCanceled, "evaluation canceled")
		}
	}
	return nil
}

func (st *state) checkSize(n node, c Collection) error {
	if len(c) > st.maxColl {
		return st.errAt(n, KindLimit, CodeSizeLimit, "collection larger than %d items", st.maxColl)
	}
	return nil
}

func (st *state) clock() time.Time {
	if !st.nowSet {
		if st.ec.Now != nil {
			st.now = st.ec.Now()
		} else {
			st.now = time.Now()
		}
		st.nowSet = true
	}
	return st.now
}

var (
	trueColl  = Collection{sysItem(true)}
	falseColl = Collection{sysItem(false)}
)

func boolColl(b bool) Collection {
	if b {
		return trueColl[:1:1]
	}
	return falseColl[:1:1]
}

func (st *state) eval(n node, sc *scope) (Collection, error) {
	if err := st.step(n, 1); err != nil {
		return nil, err
	}
	switch x := n.(type) {
	case *literalNode:
		return x.val[:len(x.val):len(x.val)], nil
	case *identNode:
		return st.navigate(x, sc.this, x.term)
	case *invokeNode:
		left, err := st.eval(x.left, sc)
		if err != nil {
			return nil, err
		}
		switch r := x.right.(type) {
		case *identNode:
			if st.ec.Strict {
				if err := st.checkAsMember(x.left, r); err != nil {
					return nil, err
				}
			}
			return st.navigate(r, left, false)
		case *funcNode:
			return st.call(r, left, sc)
		default:
			return st.eval(r, sc)
		}
	case *funcNode:
		return st.call(x, sc.this, sc)
	case *indexNode:
		left, err := st.eval(x.left, sc)
		if err != nil {
			return nil, err
		}
		idx, err := st.eval(x.index, sc)
		if err != nil {
			return nil, err
		}
		it, ok, err := st.singleton(x.index, idx)
		if err != nil || !ok {
			return nil, err
		}
		i, isInt := it.v.(int64)
		if !isInt {
			if v, ok := it.sys(); ok {
				i, isInt = v.(int64)
			}
		}
		if !isInt {
			return nil, st.errAt(x.index, KindExecution, CodeType, "index must be an Integer")
		}
		if i < 0 || i >= int64(len(left)) {
			return nil, nil
		}
		return left[i : i+1 : i+1], nil
	case *unaryNode:
		v, err := st.eval(x.operand, sc)
		if err != nil {
			return nil, err
		}
		return st.unary(x, v)
	case *binaryNode:
		return st.binary(x, sc)
	case *typeOpNode:
		v, err := st.eval(x.operand, sc)
		if err != nil {
			return nil, err
		}
		if x.op == "is" {
			it, ok, err := st.singleton(x, v)
			if err != nil || !ok {
				return nil, err
			}
			return boolColl(typeMatches(it, x.typ, false)), nil
		}
		// The 'as' operator filters a collection (R4 search parameters
		// apply it to repeating elements); the as() function does not.
		var out Collection
		for _, it := range v {
			if typeMatches(it, x.typ, true) {
				out = append(out, it)
			}
		}
		return out, nil
	case *thisNode:
		return sc.this, nil
	case *indexVarNode:
		if !sc.hasIndex {
			return nil, nil
		}
		return Collection{sysItem(int64(sc.index))}, nil
	case *totalNode:
		if !sc.hasTotal {
			return nil, nil
		}
		return sc.total, nil
	case *varNode:
		return st.variable(x)
	}
	return nil, st.errAt(n, KindExecution, CodeUnsupported, "unsupported expression node")
}

// checkAsMember is strict mode's static check of "(x as T).name": T's
// model must define name even when the cast selects nothing.
func (st *state) checkAsMember(left node, r *identNode) error {
	op, ok := left.(*typeOpNode)
	if !ok || op.op != "as" || op.typ.ns == "System" || r.name == "id" || r.name == "extension" {
		return nil
	}
	t := op.typ.name
	if isLowerFirst(t) || !modelKnows(t) || lookupChild(t, r.name).ok {
		return nil
	}
	return st.errAt(r, KindSemantic, CodeUnknownElem, "type %s has no element '%s'", t, r.name)
}

func (st *state) variable(x *varNode) (Collection, error) {
	switch x.name {
	case "resource":
		if st.ec.Resource != nil {
			return st.ec.Resource, nil
		}
		return st.input, nil
	case "rootResource":
		if st.ec.RootResource != nil {
			return st.ec.RootResource, nil
		}
		if st.ec.Resource != nil {
			return st.ec.Resource, nil
		}
		return st.input, nil
	case "context":
		if st.ec.Context != nil {
			return st.ec.Context, nil
		}
		return st.input, nil
	case "ucum":
		return Collection{sysItem("http://unitsofmeasure.org")}, nil
	case "sct":
		return Collection{sysItem("http://snomed.info/sct")}, nil
	case "loinc":
		return Collection{sysItem("http://loinc.org")}, nil
	}
	if v, ok := st.ec.Vars[x.name]; ok {
		return v, nil
	}
	if strings.HasPrefix(x.name, "vs-") {
		return Collection{sysItem("http://hl7.org/fhir/ValueSet/" + x.name[3:])}, nil
	}
	if strings.HasPrefix(x.name, "ext-") {
		return Collection{sysItem("http://hl7.org/fhir/StructureDefinition/" + x.name[4:])}, nil
	}
	return nil, st.errAt(x, KindExecution, CodeUnknownVar, "unknown external constant %%%s", x.name)
}

// singleton applies the singleton rule: empty → ok false; one item → it;
// more → execution error.
func (st *state) singleton(n node, c Collection) (Item, bool, error) {
	switch len(c) {
	case 0:
		return Item{}, false, nil
	case 1:
		return c[0], true, nil
	}
	return Item{}, false, st.errAt(n, KindExecution, CodeSingleton, "expected a single item but found %d", len(c))
}

// boolOf applies singleton evaluation for a Boolean context: empty is
// unknown, a Boolean is itself, any other single item is true.
func (st *state) boolOf(n node, c Collection) (val, known bool, err error) {
	it, ok, err := st.singleton(n, c)
	if err != nil || !ok {
		return false, false, err
	}
	if v, ok := it.sys(); ok {
		if b, isB := v.(bool); isB {
			return b, true, nil
		}
	}
	return true, true, nil
}

// navigate selects the children called name of every item.
func (st *state) navigate(n *identNode, in Collection, term bool) (Collection, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if term && n.name != "" && n.name[0] >= 'A' && n.name[0] <= 'Z' {
		// A type name at the start of a path selects the matching focus.
		matched := 0
		for _, it := range in {
			if it.typ != "" && isSubtype(it.typ, n.name) {
				matched++
			}
		}
		if matched == len(in) {
			return in, nil
		}
		if matched > 0 {
			out := make(Collection, 0, matched)
			for _, it := range in {
				if it.typ != "" && isSubtype(it.typ, n.name) {
					out = append(out, it)
				}
			}
			return out, nil
		}
		if fhirKnownResource(n.name) {
			if st.ec.Strict && n.root && len(in) == 1 && in[0].isResource() {
				return nil, st.errAt(n, KindSemantic, CodeUnknownElem, "the context is not of type %s", n.name)
			}
			if in[0].isResource() {
				return nil, nil
			}
		}
	}
	var out Collection
	for _, it := range in {
		var err error
		out, err = st.child(n, it, n.name, out)
		if err != nil {
			return nil, err
		}
	}
	if err := st.step(n, len(out)); err != nil {
		return nil, err
	}
	if err := st.checkSize(n, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (it Item) isResource() bool {
	m, ok := it.v.(map[string]any)
	if !ok {
		return false
	}
	_, ok = m["resourceType"]
	return ok
}

// child appends the children called name of it to out.
func (st *state) child(n node, it Item, name string, out Collection) (Collection, error) {
	m, ok := it.v.(map[string]any)
	if !ok {
		if it.ext != nil && (name == "extension" || name == "id") {
			return st.appendJSONTo(out, it.ext, pick2p(name == "id", &keyID, &keyExtension), it.ext[name], nil, pick2(name == "id", "string", "Extension"), "Extension"), nil
		}
		if st.ec.Strict && it.typ != "" && it.typ != "Element" && (fhirKnown(it.typ)) && name != "extension" && name != "id" {
			return nil, st.errAt(n, KindSemantic, CodeUnknownElem, "type %s has no element '%s'", it.typ, name)
		}
		return out, nil
	}
	if it.typ == "" {
		// System values that are objects (type()): plain JSON navigation.
		return st.appendJSONTo(out, m, strPtr(name), m[name], nil, "", ""), nil
	}
	var ci childInfo
	if id, ok := n.(*identNode); ok {
		ci = id.lookup(it.path, name)
	} else {
		ci = lookupChild(it.path, name)
	}
	if ci.ok {
		if ci.concrete && st.ec.Strict {
			return nil, st.errAt(n, KindSemantic, CodeUnknownElem, "'%s' is a choice element: use its base name with ofType() or 'as'", name)
		}
		if ci.choice && !ci.concrete {
			for i, t := range ci.types {
				key := &ci.choiceKeys[i]
				raw, ext := m[*key], m["_"+*key]
				if raw != nil || ext != nil {
					t = normType(t)
					return st.appendJSONTo(out, m, key, raw, ext, t, t), nil
				}
			}
			return out, nil
		}
		var ext any
		if len(m) > 0 && ci.typ != "" && isLowerFirst(ci.typ) {
			ext = m[ci.extKey]
		}
		return st.appendJSONTo(out, m, ci.key, m[name], ext, ci.typ, ci.path), nil
	}
	if st.ec.Strict && modelKnows(it.path) {
		return nil, st.errAt(n, KindSemantic, CodeUnknownElem, "type %s has no element '%s'", it.typ, name)
	}
	// Fallback: the model does not describe this node; use the JSON.
	raw, ext := m[name], m["_"+name]
	if raw != nil || ext != nil {
		return st.appendJSONTo(out, m, strPtr(name), raw, ext, "", ""), nil
	}
	for k, v := range m {
		if len(k) > len(name) && strings.HasPrefix(k, name) && k[len(name)] >= 'A' && k[len(name)] <= 'Z' {
			t := k[len(name):]
			if !fallbackKnown[t] {
				t = strings.ToLower(t[:1]) + t[1:]
			}
			return st.appendJSONTo(out, m, strPtr(k), v, m["_"+k], t, t), nil
		}
	}
	return out, nil
}

// Keys of a primitive's "_x" object, for locations.
var keyID, keyExtension = "id", "extension"

func pick2p(c bool, a, b *string) *string {
	if c {
		return a
	}
	return b
}

func pick2(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// appendJSON appends a JSON child value (single or array) with its
// primitive-extension sibling. par and key are where the value lives, so
// every item can report its location.
func appendJSON(out Collection, par map[string]any, key *string, raw, ext any, typ, path string) Collection {
	switch v := raw.(type) {
	case []any:
		exts, _ := ext.([]any)
		if out == nil {
			out = make(Collection, 0, len(v))
		}
		for i, e := range v {
			var em map[string]any
			if i < len(exts) {
				em, _ = exts[i].(map[string]any)
			}
			if e == nil && em == nil {
				continue
			}
			out = append(out, makeNode(e, em, typ, path, par, key, i))
		}
		if len(v) == 0 {
			for i, e := range exts {
				if em, ok := e.(map[string]any); ok {
					out = append(out, makeNode(nil, em, typ, path, par, key, i))
				}
			}
		}
		return out
	case nil:
		if em, ok := ext.(map[string]any); ok {
			return append(out, makeNode(nil, em, typ, path, par, key, -1))
		}
		if exts, ok := ext.([]any); ok {
			for i, e := range exts {
				if em, ok := e.(map[string]any); ok {
					out = append(out, makeNode(nil, em, typ, path, par, key, i))
				}
			}
		}
		return out
	}
	em, _ := ext.(map[string]any)
	return append(out, makeNode(raw, em, typ, path, par, key, -1))
}

func makeNode(v any, ext map[string]any, typ, path string, par map[string]any, key *string, idx int) Item {
	if typ == "" || typ == "Resource" || typ == "DomainResource" {
		switch x := v.(type) {
		case map[string]any:
			if rt, ok := x["resourceType"].(string); ok {
				return Item{v: x, typ: rt, path: rt, par: par, key: key, idx: idx}
			}
			if typ == "" {
				typ = "Element"
			}
		case string:
			typ = "string"
		case bool:
			typ = "boolean"
		case json.Number:
			if strings.ContainsAny(string(x), ".eE") {
				typ = "decimal"
			} else {
				typ = "integer"
			}
		}
	}
	return Item{v: v, typ: typ, path: path, ext: ext, par: par, key: key, idx: idx}
}

func fhirKnownResource(name string) bool {
	return fhirIsResourceType(name)
}

// sortedKeys returns the keys of m in a stable order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
