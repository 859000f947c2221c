package fhirpath

import "sync/atomic"

// node is one node of a compiled expression. Every node remembers where it
// starts in the source so evaluation errors carry a position.
type node interface {
	pos() int
}

type base struct{ p int }

func (b base) pos() int { return b.p }

// literalNode is a constant collection computed at compile time.
type literalNode struct {
	base
	val Collection
}

// identNode is a member access on the focus ($this) at term position, or on
// the result of the left operand after '.'.
type identNode struct {
	base
	name string
	// term is true when the identifier starts a path (no '.' before it):
	// a type name matching the focus then selects the focus itself.
	term bool
	// root is true for the identifier that starts a whole-expression path
	// (Encounter in "Encounter.name.given"): in strict mode a type name there
	// that the context cannot have is a semantic error.
	root bool
	// last caches the most recent child lookup: a path step almost always
	// sees the same parent type, so this skips the shared cache's lock.
	last atomic.Pointer[nodeLookup]
}

type nodeLookup struct {
	parent string
	ci     childInfo
}

func (n *identNode) lookup(parent, name string) childInfo {
	if l := n.last.Load(); l != nil && l.parent == parent {
		return l.ci
	}
	ci := lookupChild(parent, name)
	n.last.Store(&nodeLookup{parent: parent, ci: ci})
	return ci
}

// markRoot flags the leftmost identifier of a path expression.
func markRoot(n node) {
	for {
		switch x := n.(type) {
		case *invokeNode:
			n = x.left
		case *indexNode:
			n = x.left
		case *identNode:
			x.root = x.term
			return
		default:
			return
		}
	}
}

// invokeNode is "left.right" where right is an identNode or a funcNode.
type invokeNode struct {
	base
	left, right node
}

type funcNode struct {
	base
	name string
	args []node
	def  *funcDef
	// typeArg is the resolved type specifier for is/as/ofType.
	typeArg typeSpec
	term    bool // called at term position (no explicit input)
}

type indexNode struct {
	base
	left, index node
}

type unaryNode struct {
	base
	op      string
	operand node
}

type binaryNode struct {
	base
	op          string
	left, right node
}

type typeOpNode struct {
	base
	op      string // "is" or "as"
	operand node
	typ     typeSpec
}

type thisNode struct{ base }
type indexVarNode struct{ base }
type totalNode struct{ base }

type varNode struct {
	base
	name string
}

// typeSpec is a resolved type specifier: namespace "System" or "FHIR"
// (or "" when unqualified) and the type name.
type typeSpec struct {
	ns   string
	name string
}

func (t typeSpec) String() string {
	if t.ns == "" {
		return t.name
	}
	return t.ns + "." + t.name
}
