package search

import (
	"context"
	"strings"

	"phix/fhir"
	"phix/fhir/fhirpath"
)

// Extraction through the FHIRPath engine: a parameter's values are what its
// expression selects, evaluated by fhir/fhirpath (compiled once, cached), then
// converted to entries by the same code as the fast path (the item's FHIR
// type plays the Element's datatype). This is the reference semantics:
// TestExtractMatchesEngine checks that the fast path (plain paths walked over
// the JSON tree) gives the same entries for every parameter over the R4
// examples and Synthea, and Extract uses the engine for the parameters the
// fast path cannot express (composites with %resource components).

// typeResolver serves resolve() for "where(resolve() is T)": the target's
// type is all such an expression needs, and it is in the reference itself
// ("Patient/1", "http://x/fhir/Patient/1"). Contained ("#id") and Bundle
// references are resolved by the engine itself.
var typeResolver = fhirpath.ResolverFunc(func(_ context.Context, ref string) (map[string]any, error) {
	e, ok := ParseReference(ref)
	if !ok {
		// A canonical with a version, or another absolute form.
		ref, _, _ = strings.Cut(ref, "|")
		if t := refTypeOfURL(ref); t != "" {
			return map[string]any{"resourceType": t}, nil
		}
		return nil, nil
	}
	t := e.RefType
	if t == "" && e.URL != "" {
		t = refTypeOfURL(e.URL)
	}
	if t == "" {
		return nil, nil
	}
	return map[string]any{"resourceType": t, "id": e.RefID}, nil
})

// engineLimits bound one evaluation: extraction runs on every write.
var engineLimits = fhirpath.Limits{MaxSteps: 1_000_000}

// evalItems evaluates expr over input with obj as %resource.
func evalItems(expr string, obj map[string]any, input fhirpath.Collection) (fhirpath.Collection, error) {
	e, err := fhirpath.Cached(expr)
	if err != nil {
		return nil, err
	}
	res := fhirpath.Collection{fhirpath.NewResourceItem(obj)}
	ec := &fhirpath.EvalContext{Resource: res, Resolver: typeResolver, Limits: engineLimits}
	if input == nil {
		input = res
	}
	return e.Evaluate(ec, input)
}

// itemDataType is the datatype name the converters expect for an item.
func itemDataType(it fhirpath.Item) string {
	t := it.Type()
	if s, ok := strings.CutPrefix(t, "System."); ok {
		switch s {
		case "Boolean":
			return "boolean"
		case "String":
			return "string"
		case "Integer":
			return "integer"
		case "Decimal":
			return "decimal"
		case "Date":
			return "date"
		case "DateTime":
			return "dateTime"
		case "Time":
			return "time"
		case "Quantity":
			return "Quantity"
		}
		return s
	}
	t = strings.TrimPrefix(t, "FHIR.")
	if IsResourceType(t) {
		return "Resource"
	}
	return t
}

// convertItems turns engine results into entries of param x.param.
func (x *extractor) convertItems(items fhirpath.Collection) {
	var el Element
	x.elem = &el
	for _, it := range items {
		el = Element{DataType: itemDataType(it)}
		v := it.Raw()
		if v == nil {
			continue // a primitive with only extensions
		}
		x.convert(v)
	}
}

// ExtractParamFHIRPath returns the entries of r for p computed by evaluating
// p's FHIRPath expression with the engine. Parameters without an expression
// (_text, _content, _query) and special ones yield none. An expression the
// engine refuses (never the case for the R4 set; see the tests) is an error.
func ExtractParamFHIRPath(r *fhir.Resource, p *Param) ([]Entry, error) {
	if r == nil || r.Object == nil || p == nil || p.Expression == "" || !appliesTo(p, r.Type) {
		return nil, nil
	}
	x := extractor{param: p}
	if p.Type == TypeComposite {
		if err := x.engineComposite(r.Object, p); err != nil {
			return nil, err
		}
		return x.out, nil
	}
	if !extractable(p.Type) {
		return nil, nil
	}
	items, err := evalItems(p.Expression, r.Object, nil)
	if err != nil {
		return nil, err
	}
	x.convertItems(items)
	return x.out, nil
}

// appliesTo reports whether p is defined on resource type t.
func appliesTo(p *Param, t string) bool {
	for _, b := range p.Base {
		switch {
		case b == t, b == "Resource":
			return true
		case b == "DomainResource" && !nonDomain[t]:
			return true
		}
	}
	return false
}

// engineComposite extracts a composite through the engine: every item of the
// composite's expression is an instance (a Group); each component's
// expression is evaluated on it (with %resource the resource). An instance
// lacking a component yields nothing, as on the fast path.
func (x *extractor) engineComposite(obj map[string]any, p *Param) error {
	parts := load().compositeParts[p]
	if parts == nil {
		return nil
	}
	bases, err := evalItems(p.Expression, obj, nil)
	if err != nil {
		return err
	}
	group := 0
	for _, b := range bases {
		group++
		start := len(x.out)
		for k, c := range p.Components {
			items, err := evalItems(c.Expression, obj, fhirpath.Collection{b})
			if err != nil {
				x.param = p
				return err
			}
			before := len(x.out)
			x.param = parts[k]
			x.convertItems(items)
			if len(x.out) == before {
				x.out = x.out[:start]
				group--
				break
			}
		}
		for i := start; i < len(x.out); i++ {
			x.out[i].Group = group
		}
	}
	x.param = p
	return nil
}

// ExtractFHIRPath is Extract computed entirely by the FHIRPath engine: the
// entries of every indexed parameter of r's type. Extract gives the same
// entries (as sets; see TestExtractMatchesEngine) several times faster; this
// is the reference it is checked and benchmarked against.
func ExtractFHIRPath(r *fhir.Resource) ([]Entry, error) {
	if r == nil || r.Object == nil {
		return nil, nil
	}
	var out []Entry
	for _, p := range Params(r.Type) {
		if !Indexed(p) || IsFullText(p) {
			continue
		}
		es, err := ExtractParamFHIRPath(r, p)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}
