package invariant

import (
	"sync"

	"phix/fhir"
	"phix/fhir/fhirpath"
)

// Expressions of the two constraints that sit on nearly every element;
// they are evaluated natively (native.go) when the tables hold exactly
// these texts, and TestNativeEquivalence proves the native forms equal to
// the engine on the whole corpus.
const (
	exprEle1 = "hasValue() or (children().count() > id.count())"
	exprExt1 = "extension.exists() != value.exists()"
)

// rule is one constraint ready to run.
type rule struct {
	c      *fhir.Constraint
	diag   string // "<key>: <human>": no instance data
	expr   *fhirpath.Expression
	err    error                 // compile error: reported as not evaluated
	native func(n nodeView) bool // ele-1, ext-1
	dom3   bool                  // native dom-3, decided after the walk (dom3.go)
}

// index holds every rule, compiled once, by definition path.
type index struct {
	rules  []*rule
	byPath map[string][]*rule
	plans  sync.Map // planKey -> *plan
	// contained holds the root rules of each resource type without dom-6:
	// a contained resource's narrative is its container's (R4 "Contained
	// Resources": the container's narrative includes the contained
	// content), so dom-6 is not asked of it, as the HL7 validator does.
	contained map[string][]*rule
}

var (
	idxOnce sync.Once
	idx     *index
)

func theIndex() *index {
	idxOnce.Do(func() { idx = buildIndex(fhir.Constraints(), false) })
	return idx
}

// buildIndex compiles every constraint. With both set, ele-1 and ext-1
// get the native form and the compiled expression (the equivalence test
// runs both); otherwise only the native form.
func buildIndex(cons []*fhir.Constraint, both bool) *index {
	ix := &index{byPath: map[string][]*rule{}, contained: map[string][]*rule{}}
	for _, c := range cons {
		r := &rule{c: c, diag: c.Key + ": " + c.Human}
		switch c.Expression {
		case exprEle1:
			r.native = ele1
		case exprExt1:
			r.native = ext1
		case exprDom3:
			r.dom3 = true
		}
		if (r.native == nil && !r.dom3) || both {
			r.expr, r.err = fhirpath.Compile(rewrite(c.Key, c.Expression))
		}
		ix.rules = append(ix.rules, r)
		for _, p := range c.Paths {
			ix.byPath[p] = append(ix.byPath[p], r)
		}
	}
	for _, rt := range fhir.ResourceTypes() {
		for _, r := range ix.byPath[rt] {
			if r.c.Key != "dom-6" {
				ix.contained[rt] = append(ix.contained[rt], r)
			}
		}
	}
	return ix
}

// containedRules returns the root rules for a contained resource.
func (ix *index) containedRules(rt string) []*rule { return ix.contained[rt] }

// plan is what applies to one child element of an object shape: computed
// once per (parent definition path, JSON name) and cached.
type plan struct {
	ok       bool
	lookup   string  // path to pass to fhir.LookupElement for its children
	itemType string  // FHIR type given to the engine item
	resource bool    // element of a resource type (contained, entry.resource)
	prim     bool    // primitive type
	engine   bool    // some rule needs the engine (not only native ones)
	rules    []*rule // element-path rules and the type's own, deduplicated
}

type planKey struct{ parent, name string }

// planFor resolves the child name of parent. Safe for concurrent use.
func (ix *index) planFor(parent, name string) *plan {
	k := planKey{parent, name}
	if p, ok := ix.plans.Load(k); ok {
		return p.(*plan)
	}
	p := ix.computePlan(parent, name)
	if p.ok {
		// Unknown names are not cached: they come from the client, and
		// caching them would let input grow the cache without bound.
		ix.plans.Store(k, p)
	}
	return p
}

func (ix *index) computePlan(parent, name string) *plan {
	info, concrete, ok := fhir.LookupElement(parent, name)
	if !ok || concrete == "" {
		return &plan{}
	}
	p := &plan{ok: true, lookup: concrete, itemType: concrete}
	vt := fhir.ValidationType(parent, name)
	switch {
	case concrete == "Resource" || fhir.IsResourceType(concrete):
		p.resource = true
	case fhir.IsPrimitiveType(concrete):
		p.prim = true
	}
	p.rules = appendRules(p.rules, ix.byPath[info.Path])
	if !p.resource && vt != "" {
		// The type's root constraints (per-1 on Period, sqty-1 on a
		// SimpleQuantity) and, for backbone elements, those on the
		// structure the element is (que-1 on Questionnaire.item reached
		// through Questionnaire.item.item).
		p.rules = appendRules(p.rules, ix.byPath[vt])
	}
	for _, r := range p.rules {
		if r.native == nil && !r.dom3 {
			p.engine = true
		}
	}
	return p
}

// appendRules adds rules not already present with the same key and
// expression (ele-1 is on both the element and its type).
func appendRules(dst, src []*rule) []*rule {
outer:
	for _, r := range src {
		for _, d := range dst {
			if d.c.Key == r.c.Key && d.c.Expression == r.c.Expression {
				continue outer
			}
		}
		dst = append(dst, r)
	}
	return dst
}
