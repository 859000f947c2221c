package deid

import (
	"reflect"
	"strconv"
	"strings"
	"sync"
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
	// nestedDepth is each nested resource's copy depth, so its own copy
	// stops at maxCopyDepth overall as one deep copy of the whole would.
	nestedDepth []int
	objIdx      map[unsafe.Pointer]int
	locIdx      map[locKey]int
	slots       map[string]int // FHIR type → index into bySlot (the engine's)
	bySlot      [][]int        // nodes of each rule type, in preorder
	claim       []bool
}

var treePool = sync.Pool{New: func() any { return &tree{nodes: make([]node, 0, 64)} }}

// newTree copies src (as deepCopy(src, depth) would) and indexes the copy
// in the same pass, so the resource is walked once instead of twice.
// Nested resources are left uncopied: the engine de-identifies each as a
// resource of its own and replaces it. slots names the FHIR types whose
// nodes type rules select. It returns nil when src is beyond maxCopyDepth.
// Release the tree with release when done.
func newTree(src map[string]any, rtype string, depth int, slots map[string]int, nslots int) *tree {
	if depth > maxCopyDepth {
		return nil
	}
	t := treePool.Get().(*tree)
	t.rtype, t.slots = rtype, slots
	if cap(t.bySlot) < nslots {
		t.bySlot = make([][]int, nslots)
	}
	t.bySlot = t.bySlot[:nslots]
	t.root = make(map[string]any, len(src))
	t.walk(t.root, src, rtype, depth)
	if cap(t.claim) < len(t.nodes) {
		t.claim = make([]bool, len(t.nodes))
	} else {
		t.claim = t.claim[:len(t.nodes)]
		clear(t.claim)
	}
	return t
}

// release returns t to the pool; nothing of it may be used after.
func (t *tree) release() {
	clear(t.nodes)
	t.nodes = t.nodes[:0]
	t.nested, t.nestedDepth = t.nested[:0], t.nestedDepth[:0]
	for i := range t.bySlot {
		t.bySlot[i] = t.bySlot[i][:0]
	}
	t.root, t.slots, t.objIdx, t.locIdx = nil, nil, nil, nil
	treePool.Put(t)
}

// walk copies src (an object at depth) into dst and adds its elements.
func (t *tree) walk(dst, src map[string]any, def string, depth int) {
	for k, v := range src {
		if k == "resourceType" || k == "" {
			dst[k] = copyAt(v, depth+1)
			continue
		}
		var typ, childDef string
		if k[0] == '_' {
			typ, childDef = "Element", "Element"
		} else if _, conc, ok := fhir.LookupElement(def, k); ok {
			typ, childDef = conc, conc
		}
		if arr, ok := v.([]any); ok && depth+1 <= maxCopyDepth {
			a := make([]any, len(arr))
			dst[k] = a
			for i, e := range arr {
				a[i] = t.add(dst, k, i, typ, def, childDef, e, depth+2)
			}
			continue
		}
		dst[k] = t.add(dst, k, -1, typ, def, childDef, v, depth+1)
	}
}

// copyAt is deepCopy for a value at depth.
func copyAt(v any, depth int) any {
	if depth > maxCopyDepth {
		return nil
	}
	switch v.(type) {
	case map[string]any, []any:
		return deepCopy(v, depth)
	}
	return v
}

// add adds the node for v (at depth) and returns v's copy.
func (t *tree) add(parent map[string]any, key string, idx int, typ, def, childDef string, v any, depth int) any {
	i := len(t.nodes)
	t.nodes = append(t.nodes, node{parent: parent, key: key, idx: idx, typ: typ, def: def})
	if typ != "" {
		if s, ok := t.slots[typ]; ok {
			t.bySlot[s] = append(t.bySlot[s], i)
		}
	}
	if depth > maxCopyDepth {
		v = nil // what deepCopy leaves there
	}
	switch m := v.(type) {
	case map[string]any:
		if _, isRes := m["resourceType"]; isRes {
			t.nested = append(t.nested, i)
			t.nestedDepth = append(t.nestedDepth, depth)
			t.nodes[i].end = i + 1
			return m
		}
		if childDef == "" {
			childDef = "Element"
		}
		cm := make(map[string]any, len(m))
		t.walk(cm, m, childDef, depth)
		v = cm
	case []any:
		// Arrays of arrays are not FHIR; keep them as opaque leaves so every
		// method refuses or removes them.
		v = deepCopy(m, depth)
		t.nodes[i].leaf = true
	default:
		t.nodes[i].leaf = true
	}
	t.nodes[i].end = len(t.nodes)
	return v
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
