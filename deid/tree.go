package deid

import (
	"reflect"
	"strconv"
	"strings"
	"unsafe"

	"phix/fhir"
)

// node is one element of a resource tree, in preorder. Nested resources
// (contained, Bundle.entry.resource) are not descended into: the engine
// de-identifies them as resources of their own.
type node struct {
	parent map[string]any
	key    string
	idx    int    // index in an array; -1 when the value is not in one
	typ    string // FHIR type: primitive or complex type name, or a backbone path
	def    string // definition path of the element's parent
	end    int    // preorder index past this node's subtree
	leaf   bool
}

// removed marks a value to be deleted by cleanup, so indices stay valid
// while rules run.
type removedT struct{}

var removed = removedT{}

type tree struct {
	root   map[string]any
	rtype  string
	nodes  []node
	nested []int // nodes holding a nested resource
	objIdx map[unsafe.Pointer]int
	locIdx map[locKey]int
	typIdx map[string][]int
	claim  []bool
}

func newTree(root map[string]any, rtype string) *tree {
	t := &tree{root: root, rtype: rtype, nodes: make([]node, 0, 64)}
	t.walk(root, rtype)
	t.claim = make([]bool, len(t.nodes))
	return t
}

func (t *tree) walk(obj map[string]any, def string) {
	for k, v := range obj {
		if k == "resourceType" || k == "" {
			continue
		}
		var typ, childDef string
		if k[0] == '_' {
			typ, childDef = "Element", "Element"
		} else if _, conc, ok := fhir.LookupElement(def, k); ok {
			typ, childDef = conc, conc
		}
		if arr, ok := v.([]any); ok {
			for i, e := range arr {
				t.add(obj, k, i, typ, def, childDef, e)
			}
			continue
		}
		t.add(obj, k, -1, typ, def, childDef, v)
	}
}

func (t *tree) add(parent map[string]any, key string, idx int, typ, def, childDef string, v any) {
	i := len(t.nodes)
	t.nodes = append(t.nodes, node{parent: parent, key: key, idx: idx, typ: typ, def: def})
	switch m := v.(type) {
	case map[string]any:
		if _, isRes := m["resourceType"]; isRes {
			t.nested = append(t.nested, i)
			t.nodes[i].end = i + 1
			return
		}
		if childDef == "" {
			childDef = "Element"
		}
		t.walk(m, childDef)
	case []any:
		// Arrays of arrays are not FHIR; keep them as opaque leaves so every
		// method refuses or removes them.
		t.nodes[i].leaf = true
	default:
		t.nodes[i].leaf = true
	}
	t.nodes[i].end = len(t.nodes)
}

func (t *tree) get(i int) any {
	n := &t.nodes[i]
	v := n.parent[n.key]
	if n.idx >= 0 {
		arr, _ := v.([]any)
		if n.idx < len(arr) {
			return arr[n.idx]
		}
		return nil
	}
	return v
}

func (t *tree) set(i int, v any) {
	n := &t.nodes[i]
	if n.idx >= 0 {
		if arr, ok := n.parent[n.key].([]any); ok && n.idx < len(arr) {
			arr[n.idx] = v
		}
		return
	}
	n.parent[n.key] = v
}

// path is the instance path of node i, e.g. "name[0].given[1]" (for
// perturbation seeds and error locations; never includes values).
func (t *tree) path(i int) string {
	var parts []string
	target := t.nodes[i].parent
	parts = append(parts, seg(&t.nodes[i]))
	for target != nil && !samePtr(target, t.root) {
		j, ok := t.objectIndex()[mapPtr(target)]
		if !ok {
			break
		}
		parts = append(parts, seg(&t.nodes[j]))
		target = t.nodes[j].parent
	}
	var b strings.Builder
	b.WriteString(t.rtype)
	for k := len(parts) - 1; k >= 0; k-- {
		b.WriteByte('.')
		b.WriteString(parts[k])
	}
	return b.String()
}

func seg(n *node) string {
	if n.idx < 0 {
		return n.key
	}
	return n.key + "[" + strconv.Itoa(n.idx) + "]"
}

func mapPtr(m map[string]any) unsafe.Pointer { return reflect.ValueOf(m).UnsafePointer() }

func samePtr(a, b map[string]any) bool { return mapPtr(a) == mapPtr(b) }

// objectIndex maps each object's identity to its node, built on first use.
func (t *tree) objectIndex() map[unsafe.Pointer]int {
	if t.objIdx == nil {
		t.objIdx = make(map[unsafe.Pointer]int)
		for i := range t.nodes {
			if m, ok := t.get(i).(map[string]any); ok {
				t.objIdx[mapPtr(m)] = i
			}
		}
	}
	return t.objIdx
}

// typeIndex maps each FHIR type to its nodes in preorder, built on first
// use so type rules do not each walk the whole tree.
func (t *tree) typeIndex() map[string][]int {
	if t.typIdx == nil {
		t.typIdx = make(map[string][]int)
		for i := range t.nodes {
			if typ := t.nodes[i].typ; typ != "" {
				t.typIdx[typ] = append(t.typIdx[typ], i)
			}
		}
	}
	return t.typIdx
}

type locKey struct {
	parent unsafe.Pointer
	key    string
	idx    int
}

// locate finds the node at parent[key] (or parent[key][idx]), as reported
// by fhirpath.Item.Location. A primitive that has only extensions is found
// through its "_key" sibling.
func (t *tree) locate(parent map[string]any, key string, idx int) (int, bool) {
	if t.locIdx == nil {
		t.locIdx = make(map[locKey]int, len(t.nodes))
		for i := range t.nodes {
			n := &t.nodes[i]
			t.locIdx[locKey{mapPtr(n.parent), n.key, n.idx}] = i
		}
	}
	p := mapPtr(parent)
	if i, ok := t.locIdx[locKey{p, key, idx}]; ok {
		return i, true
	}
	i, ok := t.locIdx[locKey{p, "_" + key, idx}]
	return i, ok
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
