// Package gen builds fhir/search's registry from the FHIR R4 definitions:
// search-parameters.json, the structure definitions (for element datatypes and
// choice types) and the Patient CompartmentDefinition. Its output is the
// committed registry.json the search package embeds, so the project builds
// without the definitions at hand.
package gen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"phix/fhir/search"
)

// Output is the shape of registry.json. The search package decodes the same
// JSON into its own unexported copy of this struct.
type Output struct {
	ResourceTypes      []string            `json:"resourceTypes"`
	Params             []*search.Param     `json:"params"`
	PatientCompartment map[string][]string `json:"patientCompartment"`
}

// Generate reads the definitions in dir (the fhir-r4 folder) and returns the
// registry JSON, deterministic for the same input.
func Generate(dir string) ([]byte, error) {
	defs, err := loadDefs(dir)
	if err != nil {
		return nil, err
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				ResourceType string   `json:"resourceType"`
				ID           string   `json:"id"`
				URL          string   `json:"url"`
				Code         string   `json:"code"`
				Type         string   `json:"type"`
				Base         []string `json:"base"`
				Expression   string   `json:"expression"`
				Target       []string `json:"target"`
				Component    []struct {
					Definition string `json:"definition"`
					Expression string `json:"expression"`
				} `json:"component"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := readJSON(filepath.Join(dir, "search-parameters.json"), &bundle); err != nil {
		return nil, err
	}
	out := Output{ResourceTypes: defs.resourceTypes, PatientCompartment: map[string][]string{}}
	for _, e := range bundle.Entry {
		r := e.Resource
		if r.ResourceType != "SearchParameter" {
			continue
		}
		p := &search.Param{
			Code: r.Code, URL: r.URL, Type: search.Type(r.Type),
			Base: r.Base, Expression: r.Expression, Targets: r.Target,
		}
		for _, c := range r.Component {
			p.Components = append(p.Components, search.Component{Definition: c.Definition, Expression: c.Expression})
		}
		paths, elems, ok := defs.compile(p)
		if ok {
			p.Paths = paths
			p.Elements = elems
		}
		out.Params = append(out.Params, p)
	}
	sort.SliceStable(out.Params, func(i, j int) bool { return out.Params[i].URL < out.Params[j].URL })

	var comp struct {
		Resource []struct {
			Code  string   `json:"code"`
			Param []string `json:"param"`
		} `json:"resource"`
	}
	if err := readJSON(filepath.Join(dir, "compartmentdefinition-patient.json"), &comp); err != nil {
		return nil, err
	}
	for _, r := range comp.Resource {
		if len(r.Param) > 0 {
			out.PatientCompartment[r.Code] = r.Param
		}
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

// compile turns a parameter's expression into Paths and Elements. ok is false
// when any union branch is not a plain path.
func (d *defs) compile(p *search.Param) (paths []string, elems []search.Element, ok bool) {
	if p.Expression == "" {
		return nil, nil, false
	}
	for _, branch := range strings.Split(p.Expression, "|") {
		br, err := parseBranch(strings.TrimSpace(branch))
		if err != nil {
			return nil, nil, false
		}
		// R4 ships "name | alias" for InsurancePlan-name: relative to the base.
		if len(p.Base) == 1 && !d.isTypeName(br.steps[0].name) {
			br.steps = append([]pstep{{name: p.Base[0]}}, br.steps...)
		}
		paths = append(paths, br.dotted())
		es, err := d.resolve(br)
		if err != nil {
			return nil, nil, false
		}
		for _, e := range es {
			if compatible(p.Type, e.DataType) {
				elems = append(elems, e)
			}
		}
	}
	return paths, elems, true
}

// compatible reports whether a parameter of type t can index datatype dt.
// Composite and special parameters keep every element: their extraction is
// deferred, and the elements document what they cover.
func compatible(t search.Type, dt string) bool {
	switch t {
	case search.TypeString:
		switch dt {
		case "string", "markdown", "HumanName", "Address", "code", "id", "uri", "url":
			return true
		}
	case search.TypeToken:
		switch dt {
		case "code", "boolean", "id", "string", "uri", "url", "canonical", "oid", "uuid",
			"Coding", "CodeableConcept", "Identifier", "ContactPoint":
			return true
		}
	case search.TypeDate:
		switch dt {
		case "date", "dateTime", "instant", "Period", "Timing":
			return true
		}
	case search.TypeNumber:
		switch dt {
		case "decimal", "integer", "positiveInt", "unsignedInt":
			return true
		}
	case search.TypeQuantity:
		switch dt {
		case "Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity", "Money", "Range":
			return true
		}
	case search.TypeReference:
		switch dt {
		case "Reference", "canonical", "uri", "url", "Resource":
			return true
		}
	case search.TypeURI:
		switch dt {
		case "uri", "url", "canonical", "oid", "uuid":
			return true
		}
	default:
		return true
	}
	return false
}
