package fhir

// Constraint is one invariant (ElementDefinition.constraint) of the R4
// StructureDefinitions: a FHIRPath expression that must not evaluate to
// false on each instance of the elements it sits on. Package fhir only
// carries them; phix/fhir/invariant evaluates them.
type Constraint struct {
	Key        string // e.g. "ele-1", "pat-1"; not unique across R4 (inv-1 has three meanings)
	Severity   string // error | warning
	Human      string // the specification's description; holds no instance data
	Expression string // FHIRPath
	Source     string // the StructureDefinition that defines it ("Element", "DomainResource"), "" when it is the one holding it
	// Paths are the definition paths it sits on: a type or resource name
	// for the root element ("Patient", "SimpleQuantity"), otherwise the
	// element path in its defining type ("Patient.contact", "Timing.repeat",
	// "Observation.value[x]").
	Paths []string
}

// Constraints returns every distinct constraint of the R4 resources and
// datatypes. The values are shared: do not modify them.
func Constraints() []*Constraint {
	return append([]*Constraint(nil), spec().cons...)
}

// ConstraintsOn returns the constraints of the element or type at a
// definition path (see Constraint.Paths), nil when there are none. The
// slice is shared: do not modify it.
func ConstraintsOn(path string) []*Constraint {
	return spec().consOn[path]
}

// ValidationType returns the type whose rules apply to the child element
// name of parentPath (arguments as for LookupElement): the constraint
// profile for elements typed with one ("SimpleQuantity" for
// Dosage.doseAndRate.dose[x] as doseQuantity), otherwise the concrete type
// LookupElement reports. "" when the element is unknown or has several
// types.
func ValidationType(parentPath, name string) string {
	n := resolveNode(parentPath)
	if n == nil {
		return ""
	}
	c, ok := n.children[name]
	if !ok {
		return ""
	}
	e := n.elems[c.idx]
	switch {
	case c.ti >= 0 && e.vtypes[c.ti].t != nil:
		return e.vtypes[c.ti].t.name
	case c.ti < 0 && e.node == nil && len(e.vtypes) == 1 && e.vtypes[0].t != nil:
		return e.vtypes[0].t.name
	}
	return concreteOf(e, c.ti)
}
