package gen

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"phix/fhir/search"
)

// elemDef is what the generator needs from one ElementDefinition.
type elemDef struct {
	types      []string // datatype codes
	contentRef string   // "#Questionnaire.item": the children are that element's
}

// defs indexes the R4 structure definitions by element path.
type defs struct {
	elems         map[string]elemDef // "Patient.name", "HumanName.family", "Observation.value[x]"
	baseOf        map[string]string  // constraint profile name -> base type (SimpleQuantity -> Quantity)
	resourceTypes []string           // concrete resource types, sorted
	isResource    map[string]bool    // concrete and abstract resource types
}

func loadDefs(dir string) (*defs, error) {
	d := &defs{elems: map[string]elemDef{}, baseOf: map[string]string{}, isResource: map[string]bool{}}
	for _, f := range []string{"profiles-types.json", "profiles-resources.json"} {
		var bundle struct {
			Entry []struct {
				Resource struct {
					ResourceType string `json:"resourceType"`
					ID           string `json:"id"`
					Kind         string `json:"kind"`
					Abstract     bool   `json:"abstract"`
					Derivation   string `json:"derivation"`
					Type         any    `json:"type"` // a bool in OperationDefinition
					Snapshot     struct {
						Element []struct {
							Path             string `json:"path"`
							ContentReference string `json:"contentReference"`
							Type             []struct {
								Code string `json:"code"`
							} `json:"type"`
						} `json:"element"`
					} `json:"snapshot"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := readJSON(filepath.Join(dir, f), &bundle); err != nil {
			return nil, err
		}
		for _, e := range bundle.Entry {
			r := e.Resource
			if r.ResourceType != "StructureDefinition" || r.Kind == "logical" {
				continue
			}
			if r.Derivation == "constraint" {
				if base, ok := r.Type.(string); ok {
					d.baseOf[r.ID] = base
				}
				continue
			}
			if r.Kind == "resource" {
				d.isResource[r.ID] = true
				if !r.Abstract {
					d.resourceTypes = append(d.resourceTypes, r.ID)
				}
			}
			for _, el := range r.Snapshot.Element {
				var ed elemDef
				ed.contentRef = strings.TrimPrefix(el.ContentReference, "#")
				for _, t := range el.Type {
					ed.types = append(ed.types, fhirpathType(t.Code))
				}
				d.elems[el.Path] = ed
			}
		}
	}
	sort.Strings(d.resourceTypes)
	if len(d.resourceTypes) == 0 {
		return nil, fmt.Errorf("no resource definitions in %s", dir)
	}
	return d, nil
}

// fhirpathType maps the System types used for Resource.id and friends.
func fhirpathType(code string) string {
	if rest, ok := strings.CutPrefix(code, "http://hl7.org/fhirpath/System."); ok {
		switch rest {
		case "String":
			return "string"
		case "Boolean":
			return "boolean"
		case "Integer":
			return "integer"
		case "Decimal":
			return "decimal"
		case "DateTime":
			return "dateTime"
		case "Time":
			return "time"
		}
		return strings.ToLower(rest)
	}
	return code
}

func (d *defs) isTypeName(name string) bool { return d.isResource[name] }

// state is one partial resolution: where we are in the definitions and the
// JSON steps taken so far.
type state struct {
	ctx   string // definition path whose children come next
	steps []search.Step
	dt    string
}

// resolve walks a branch through the definitions, expanding unrestricted
// choice elements into one Element per type.
func (d *defs) resolve(b branch) ([]search.Element, error) {
	root := b.steps[0]
	if !d.isResource[root.name] || root.cast != "" || root.whereChild != "" || root.resolveIs != "" || root.item != 0 {
		return nil, fmt.Errorf("%w: root %q", errNotPlain, root.name)
	}
	states := []state{{ctx: root.name, dt: root.name}}
	target := ""
	for i, ps := range b.steps[1:] {
		if ps.resolveIs != "" {
			if i != len(b.steps)-2 {
				return nil, errNotPlain
			}
			target = ps.resolveIs
		}
		var next []state
		for _, st := range states {
			ns, err := d.step(st, ps)
			if err != nil {
				return nil, err
			}
			next = append(next, ns...)
		}
		states = next
	}
	if len(b.steps) == 1 { // the whole resource (composite roots such as "Observation")
		return []search.Element{{Resource: root.name, DataType: root.name, Steps: []search.Step{}}}, nil
	}
	out := make([]search.Element, 0, len(states))
	for _, st := range states {
		out = append(out, search.Element{Resource: root.name, Steps: st.steps, DataType: st.dt, Target: target})
	}
	return out, nil
}

// step follows one path step from st.
func (d *defs) step(st state, ps pstep) ([]state, error) {
	path := st.ctx + "." + ps.name
	ed, ok := d.elems[path]
	choice := false
	if !ok {
		ed, ok = d.elems[path+"[x]"]
		choice = ok
	}
	if !ok {
		// A constrained type (SimpleQuantity) keeps its base type's paths.
		if base, isProfile := d.baseOf[st.dt]; isProfile {
			return d.step(state{ctx: base, steps: st.steps, dt: base}, ps)
		}
		return nil, fmt.Errorf("%w: no element %s", errNotPlain, path)
	}
	types := ed.types
	if ps.cast != "" {
		found := false
		for _, t := range types {
			if t == ps.cast {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %s is not a %s", errNotPlain, path, ps.cast)
		}
		types = []string{ps.cast}
	}
	if ed.contentRef != "" {
		types = []string{"BackboneElement"}
	}
	var out []state
	for _, t := range types {
		name := ps.name
		if choice {
			name += upperFirst(t)
		}
		steps := append(append([]search.Step(nil), st.steps...), search.Step{
			Name: name, Item: ps.item, WhereChild: ps.whereChild, WhereValue: ps.whereValue,
		})
		ctx := t
		switch {
		case ed.contentRef != "":
			ctx = ed.contentRef
		case t == "BackboneElement" || t == "Element":
			ctx = path
		}
		out = append(out, state{ctx: ctx, steps: steps, dt: t})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s has no type", errNotPlain, path)
	}
	return out, nil
}
