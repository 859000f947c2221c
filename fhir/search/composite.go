package search

import (
	"fmt"
	"strconv"
	"strings"
)

// compositeSpec is how a composite parameter is extracted: from each instance
// of a base element, the components' values relative to that instance.
type compositeSpec struct {
	// parts[k] is the synthetic parameter of component k ("P$k", with the
	// component's type) under which its entries are indexed.
	parts []*Param
	// rel[b][k] are the elements of component k relative to base element b.
	rel [][][]Element
}

// ComponentCode is the Param of the index entries of component k of the
// composite parameter code ("code-value-quantity$1").
func ComponentCode(code string, k int) string { return code + "$" + strconv.Itoa(k) }

// resolveComposite fills p.ComponentParams and returns its extraction spec,
// or nil when a component cannot be resolved to plain relative elements
// (%resource paths, unknown definitions).
func resolveComposite(p *Param, byURL map[string]*Param) *compositeSpec {
	if len(p.Components) == 0 || len(p.Elements) == 0 {
		return nil
	}
	comps := make([]*Param, len(p.Components))
	for k, c := range p.Components {
		cp := byURL[c.Definition]
		if cp == nil || !extractable(cp.Type) {
			return nil
		}
		comps[k] = cp
	}
	p.ComponentParams = comps
	spec := &compositeSpec{}
	for k, cp := range comps {
		spec.parts = append(spec.parts, &Param{Code: ComponentCode(p.Code, k), Type: cp.Type, Targets: cp.Targets})
	}
	for _, base := range p.Elements {
		rel := make([][]Element, len(comps))
		ok := true
		for k, cp := range comps {
			rel[k] = relativeElements(base, p.Components[k].Expression, cp)
			ok = ok && len(rel[k]) > 0
		}
		if ok {
			spec.rel = append(spec.rel, rel)
		} else {
			spec.rel = append(spec.rel, nil)
		}
	}
	for _, r := range spec.rel {
		if r != nil {
			return spec
		}
	}
	return nil
}

// relativeElements finds the component's elements under base that its
// expression ("code", "value.as(Quantity) | value.as(Range)") names.
func relativeElements(base Element, expr string, cp *Param) []Element {
	var out []Element
	for _, branch := range strings.Split(expr, "|") {
		names := exprNames(strings.TrimSpace(branch))
		if names == nil {
			continue
		}
		for _, e := range cp.Elements {
			if e.Resource != base.Resource || len(e.Steps) != len(base.Steps)+len(names) {
				continue
			}
			if !sameNames(e.Steps[:len(base.Steps)], base.Steps) || !namesMatch(e.Steps[len(base.Steps):], names) {
				continue
			}
			rel := e
			rel.Steps = e.Steps[len(base.Steps):]
			out = append(out, rel)
		}
	}
	return out
}

// exprNames turns "value.as(Quantity)" into [valueQuantity] and "code" into
// [code]; nil for anything else (%resource, functions).
func exprNames(expr string) []string {
	if expr == "" || strings.HasPrefix(expr, "%") {
		return nil
	}
	var names []string
	for _, seg := range strings.Split(expr, ".") {
		if t, ok := strings.CutPrefix(seg, "as("); ok && strings.HasSuffix(t, ")") && len(names) > 0 {
			t = strings.TrimSuffix(t, ")")
			if t == "" {
				return nil
			}
			names[len(names)-1] += strings.ToUpper(t[:1]) + t[1:]
			continue
		}
		if seg == "" || strings.ContainsAny(seg, "()[]' ") {
			return nil
		}
		names = append(names, seg)
	}
	return names
}

func sameNames(a, b []Step) bool {
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

// namesMatch compares steps with names; the last name may be an unresolved
// choice ("value" matches "valueQuantity").
func namesMatch(steps []Step, names []string) bool {
	for i, n := range names {
		s := steps[i].Name
		if s == n {
			continue
		}
		if i == len(names)-1 && len(s) > len(n) && strings.HasPrefix(s, n) && s[len(n)] >= 'A' && s[len(n)] <= 'Z' {
			continue
		}
		return false
	}
	return true
}

// composite extracts one composite parameter from obj: for every instance
// of a base element, a new Group holding each component's entries; an
// instance lacking a component yields nothing (it could never match).
func (x *extractor) composite(obj map[string]any, p *Param, spec *compositeSpec, bases []int) {
	group := 0
	for _, b := range bases {
		rel := spec.rel[b]
		if rel == nil {
			continue
		}
		base := &p.Elements[b]
		walkItems(obj, base.Steps, func(item any) {
			group++
			start := len(x.out)
			for k, els := range rel {
				before := len(x.out)
				x.param = spec.parts[k]
				for i := range els {
					x.elem = &els[i]
					x.walk(item, els[i].Steps)
				}
				if len(x.out) == before {
					x.out = x.out[:start]
					group--
					return
				}
			}
			for i := start; i < len(x.out); i++ {
				x.out[i].Group = group
			}
		})
	}
	x.param = p
}

// walkItems calls fn for every object steps reach from v (the instances of
// a composite's base element; no steps: v itself).
func walkItems(v any, steps []Step, fn func(any)) {
	if len(steps) == 0 {
		fn(v)
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	s := &steps[0]
	child, ok := m[s.Name]
	if !ok {
		return
	}
	keep := func(it any) bool {
		if s.WhereChild == "" {
			return true
		}
		mm, ok := it.(map[string]any)
		if !ok {
			return false
		}
		str, _ := mm[s.WhereChild].(string)
		return str == s.WhereValue
	}
	arr, isArr := child.([]any)
	if !isArr {
		arr = []any{child}
	}
	for i, it := range arr {
		if s.Item > 0 && i != s.Item-1 {
			continue
		}
		if keep(it) {
			walkItems(it, steps[1:], fn)
		}
	}
}

// compositeValue parses "part$part...", one part per component, each as its
// component parameter (prefixes allowed where the component's type takes
// them).
func compositeValue(p *Param, piece string) (Value, error) {
	parts := splitEscaped(piece, '$')
	if len(parts) != len(p.ComponentParams) {
		return Value{}, fmt.Errorf("expected %d '$'-separated parts", len(p.ComponentParams))
	}
	v := Value{Raw: piece, Components: make([]Value, len(parts))}
	for k, part := range parts {
		if part == "" {
			return Value{}, fmt.Errorf("composite part %d is empty", k+1)
		}
		cv, err := parseValue(p.ComponentParams[k], "", part)
		if err != nil {
			return Value{}, fmt.Errorf("composite part %d: %w", k+1, err)
		}
		v.Components[k] = cv
	}
	return v, nil
}
