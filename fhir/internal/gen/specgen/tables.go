// Package specgen turns the FHIR R4 definition bundles into the compact
// tables the fhir package embeds; internal/gen is its command.
package specgen

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The output shape; fhir/tables.go decodes the same shape.
type outTables struct {
	Version    string              `json:"version"`
	Types      []outType           `json:"types"`
	ValueSets  map[string][]string `json:"valueSets"`  // url -> sorted codes
	Unexpanded []string            `json:"unexpanded"` // required code bindings that cannot be expanded locally
	// Constraints are the invariants of every ElementDefinition, each
	// distinct one stored once with the definition paths it sits on.
	Constraints []outConstraint `json:"constraints"`
}

// outConstraint is one distinct ElementDefinition.constraint. Paths are
// definition paths as in the element rows: a type or resource name for the
// root element ("Patient", "SimpleQuantity"), else the element path
// ("Patient.contact", "Timing.repeat", "Observation.value[x]").
type outConstraint struct {
	Key        string   `json:"k"`
	Severity   string   `json:"s"`
	Human      string   `json:"h"`
	Expression string   `json:"x"`
	Source     string   `json:"src,omitempty"` // defining StructureDefinition, prefix stripped
	Paths      []string `json:"p"`
}

type outType struct {
	Name     string  `json:"n"`
	Kind     string  `json:"k"` // "p" primitive, "c" complex, "r" resource
	Base     string  `json:"b,omitempty"`
	Abstract bool    `json:"a,omitempty"`
	Regex    string  `json:"rx,omitempty"`
	Elements [][]any `json:"e,omitempty"` // [path, types, min, max, binding, contentReference]
}

const (
	fhirTypeExt = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	regexExt    = "http://hl7.org/fhir/StructureDefinition/regex"
	sdPrefix    = "http://hl7.org/fhir/StructureDefinition/"
)

// systemTypes maps FHIRPath system types to FHIR primitives, for elements
// without a structuredefinition-fhir-type extension (xhtml.id).
var systemTypes = map[string]string{
	"String": "string", "Boolean": "boolean", "Integer": "integer", "Decimal": "decimal",
	"Date": "date", "DateTime": "dateTime", "Time": "time",
}

type sd struct {
	ID             string `json:"id"`
	URL            string `json:"url"`
	Name           string `json:"name"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	BaseDefinition string `json:"baseDefinition"`
	Derivation     string `json:"derivation"`
	FhirVersion    string `json:"fhirVersion"`
	Snapshot       struct {
		Element []element `json:"element"`
	} `json:"snapshot"`
}

type element struct {
	Path             string  `json:"path"`
	Min              int     `json:"min"`
	Max              string  `json:"max"`
	ContentReference string  `json:"contentReference"`
	Type             []etype `json:"type"`
	Binding          *struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
	Constraint []constraint `json:"constraint"`
}

type constraint struct {
	Key        string `json:"key"`
	Severity   string `json:"severity"`
	Human      string `json:"human"`
	Expression string `json:"expression"`
	Source     string `json:"source"`
}

type etype struct {
	Code      string      `json:"code"`
	Profile   []string    `json:"profile"`
	Extension []extension `json:"extension"`
}

type extension struct {
	URL         string `json:"url"`
	ValueURL    string `json:"valueUrl"`
	ValueString string `json:"valueString"`
}

type bundle[T any] struct {
	Entry []struct {
		Resource T `json:"resource"`
	} `json:"entry"`
}

func readBundle[T any](path string) ([]T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var bd bundle[T]
	if err := json.Unmarshal(b, &bd); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	out := make([]T, 0, len(bd.Entry))
	for _, e := range bd.Entry {
		out = append(out, e.Resource)
	}
	return out, nil
}

type anyResource struct {
	ResourceType string `json:"resourceType"`
	sd
}

// Tables builds the uncompressed JSON tables from the definitions in dir.
func Tables(dir string) ([]byte, error) {
	var sds []sd
	for _, f := range []string{"profiles-types.json", "profiles-resources.json"} {
		rs, err := readBundle[anyResource](filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			// The npm package adds backports from later versions (e.g.
			// SubscriptionStatus from 4.3.0); R4 is 4.0.1 only.
			if r.ResourceType != "StructureDefinition" || r.FhirVersion != "4.0.1" || r.Kind == "logical" {
				continue
			}
			sds = append(sds, r.sd)
		}
	}
	// Constraint profiles of datatypes (SimpleQuantity, MoneyQuantity) are
	// validation targets of their own; a type reference naming one as
	// profile is written "Quantity|SimpleQuantity".
	constraint := map[string]bool{}
	for _, s := range sds {
		if s.Derivation == "constraint" {
			constraint[s.URL] = true
		}
	}
	out := outTables{Version: "4.0.1", ValueSets: map[string][]string{}}
	requiredCode := map[string]bool{}
	cons := newConstraintSet()
	for _, s := range sds {
		t := outType{Name: s.ID, Abstract: s.Abstract}
		switch s.Kind {
		case "primitive-type":
			t.Kind = "p"
		case "complex-type":
			t.Kind = "c"
		case "resource":
			t.Kind = "r"
		default:
			continue
		}
		if s.BaseDefinition != "" {
			t.Base = strings.TrimPrefix(s.BaseDefinition, sdPrefix)
		}
		els := s.Snapshot.Element
		if len(els) == 0 {
			return nil, fmt.Errorf("%s: no snapshot", s.ID)
		}
		rootPath := els[0].Path // "Quantity" for SimpleQuantity
		if err := cons.add(s.ID, els[0].Constraint); err != nil {
			return nil, err
		}
		for _, e := range els[1:] {
			path := s.ID + strings.TrimPrefix(e.Path, rootPath)
			if t.Kind == "p" && path == s.ID+".value" {
				for _, ty := range e.Type {
					for _, x := range ty.Extension {
						if x.URL == regexExt {
							t.Regex = x.ValueString
						}
					}
				}
				continue
			}
			if err := cons.add(path, e.Constraint); err != nil {
				return nil, err
			}
			var types []string
			isCode := false
			for _, ty := range e.Type {
				code := ty.Code
				if sys, ok := strings.CutPrefix(code, "http://hl7.org/fhirpath/System."); ok {
					code = systemTypes[sys]
					for _, x := range ty.Extension {
						if x.URL == fhirTypeExt {
							code = x.ValueURL
						}
					}
				}
				if code == "code" {
					isCode = true
				}
				name := code
				for _, p := range ty.Profile {
					if constraint[p] {
						name = code + "|" + strings.TrimPrefix(p, sdPrefix)
					}
				}
				types = append(types, name)
			}
			max := -1
			if e.Max != "*" {
				if _, err := fmt.Sscanf(e.Max, "%d", &max); err != nil {
					return nil, fmt.Errorf("%s: bad max", path)
				}
			}
			binding := ""
			if e.Binding != nil && e.Binding.Strength == "required" && e.Binding.ValueSet != "" {
				binding, _, _ = strings.Cut(e.Binding.ValueSet, "|")
				if isCode {
					requiredCode[binding] = true
				}
			}
			t.Elements = append(t.Elements, []any{path, strings.Join(types, ","), e.Min, max, binding, e.ContentReference})
		}
		out.Types = append(out.Types, t)
	}
	sort.Slice(out.Types, func(i, j int) bool { return out.Types[i].Name < out.Types[j].Name })

	ex, err := newExpander(filepath.Join(dir, "valuesets.json"))
	if err != nil {
		return nil, err
	}
	urls := make([]string, 0, len(requiredCode))
	for u := range requiredCode {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		codes, ok := ex.expand(u, 0)
		if !ok {
			out.Unexpanded = append(out.Unexpanded, u)
			continue
		}
		list := make([]string, 0, len(codes))
		for c := range codes {
			list = append(list, c)
		}
		sort.Strings(list)
		out.ValueSets[u] = list
	}
	out.Constraints = cons.list()
	// encoding/json writes map keys sorted, so the output is deterministic.
	return json.Marshal(out)
}

// Generate builds the gzip'd tables from the definitions in dir.
func Generate(dir string) ([]byte, error) {
	raw, err := Tables(dir)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
