package search_test

import (
	"bytes"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"phix/fhir/search"
	"phix/fhir/search/internal/gen"
	"phix/internal/testenv"
)

// TestRegistryCurrent regenerates the registry and compares it with the
// committed file. Regenerate with go generate ./fhir/search.
func TestRegistryCurrent(t *testing.T) {
	dir := testenv.Shared(t, "fhir-r4")
	want, err := gen.Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("registry.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("registry.json is stale: run go generate ./fhir/search")
	}
}

// deferred are the parameters whose expression is not a plain path: they
// wait for the FHIRPath engine (docs/search.md lists them).
var deferred = []string{
	"http://hl7.org/fhir/SearchParameter/DomainResource-text",
	"http://hl7.org/fhir/SearchParameter/Patient-deceased",
	"http://hl7.org/fhir/SearchParameter/Resource-content",
	"http://hl7.org/fhir/SearchParameter/Resource-query",
}

func TestRegistryCoverage(t *testing.T) {
	all := search.AllParams()
	if len(all) != 1378 {
		t.Fatalf("registry has %d parameters, want 1378", len(all))
	}
	var noPaths []string
	byType := map[search.Type]int{}
	for _, p := range all {
		byType[p.Type]++
		if len(p.Paths) == 0 {
			noPaths = append(noPaths, p.URL)
			continue
		}
		if len(p.Elements) == 0 {
			t.Errorf("%s has paths %v but no element it can index", p.URL, p.Paths)
		}
		// Every union branch resolves to at least one element, except
		// branches of a datatype the parameter type cannot index
		// (Observation.valueSampledData for value-quantity).
		for _, path := range p.Paths {
			if !hasElement(p, path) && !strings.HasSuffix(path, "SampledData") {
				t.Errorf("%s: branch %s has no element", p.URL, path)
			}
		}
	}
	sort.Strings(noPaths)
	if !slices.Equal(noPaths, deferred) {
		t.Errorf("parameters without paths:\n%v\nwant\n%v", noPaths, deferred)
	}
	t.Logf("%d parameters by type %v; %d without paths", len(all), byType, len(noPaths))
}

// hasElement reports whether a Paths branch produced an element.
func hasElement(p *search.Param, path string) bool {
	for _, e := range p.Elements {
		names := make([]string, 0, len(e.Steps)+1)
		names = append(names, e.Resource)
		for _, s := range e.Steps {
			names = append(names, s.Name)
		}
		dotted := strings.Join(names, ".")
		// An unrestricted choice branch (Observation.effective) is a prefix
		// of its concrete elements (Observation.effectiveDateTime).
		if dotted == path || strings.HasPrefix(dotted, path) && len(e.Steps) == strings.Count(path, ".") {
			return true
		}
	}
	return false
}

func TestLookup(t *testing.T) {
	tests := []struct {
		typ, code string
		want      search.Type
		paths     []string
		dataTypes []string
		target    string
	}{
		{"Patient", "family", search.TypeString, []string{"Patient.name.family"}, []string{"string"}, ""},
		{"Patient", "name", search.TypeString, []string{"Patient.name"}, []string{"HumanName"}, ""},
		{"Patient", "birthdate", search.TypeDate, nil, []string{"date"}, ""},
		{"Patient", "_id", search.TypeToken, []string{"Resource.id"}, nil, ""},
		{"Patient", "_lastUpdated", search.TypeDate, []string{"Resource.meta.lastUpdated"}, []string{"instant"}, ""},
		{"Observation", "_tag", search.TypeToken, nil, []string{"Coding"}, ""},
		{"Observation", "_profile", search.TypeURI, nil, []string{"canonical"}, ""},
		{"Observation", "_security", search.TypeToken, nil, nil, ""},
		{"Observation", "_source", search.TypeURI, nil, nil, ""},
		{"Observation", "value-quantity", search.TypeQuantity, nil, []string{"Quantity"}, ""},
		{"Observation", "patient", search.TypeReference, []string{"Observation.subject"}, []string{"Reference"}, "Patient"},
		{"Observation", "date", search.TypeDate, nil, []string{"dateTime", "Period", "Timing", "instant"}, ""},
		{"Condition", "onset-age", search.TypeQuantity, []string{"Condition.onsetAge", "Condition.onsetRange"}, []string{"Age", "Range"}, ""},
		{"Patient", "email", search.TypeToken, nil, []string{"ContactPoint"}, ""},
		{"InsurancePlan", "name", search.TypeString, []string{"InsurancePlan.name", "InsurancePlan.alias"}, nil, ""},
		{"Bundle", "composition", search.TypeReference, nil, []string{"Resource"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"."+tt.code, func(t *testing.T) {
			p := search.Lookup(tt.typ, tt.code)
			if p == nil {
				t.Fatal("not found")
			}
			if p.Type != tt.want {
				t.Errorf("type %s, want %s", p.Type, tt.want)
			}
			for _, path := range tt.paths {
				if !slices.Contains(p.Paths, path) {
					t.Errorf("paths %v lack %s", p.Paths, path)
				}
			}
			var dts []string
			for _, e := range p.Elements {
				if e.Resource == tt.typ || e.Resource == "Resource" {
					dts = append(dts, e.DataType)
					if tt.target != "" && e.Target != tt.target {
						t.Errorf("element %+v: target %q, want %q", e, e.Target, tt.target)
					}
				}
			}
			for _, dt := range tt.dataTypes {
				if !slices.Contains(dts, dt) {
					t.Errorf("element datatypes %v lack %s", dts, dt)
				}
			}
		})
	}
	if search.Lookup("Patient", "nope") != nil || search.Lookup("NoSuchType", "_id") != nil {
		t.Error("lookup of unknown names must be nil")
	}
}

func TestParamsAndCompartment(t *testing.T) {
	for _, typ := range []string{"Patient", "Observation", "Bundle", "Binary"} {
		codes := map[string]bool{}
		for _, p := range search.Params(typ) {
			if codes[p.Code] {
				t.Errorf("%s: duplicate code %s", typ, p.Code)
			}
			codes[p.Code] = true
		}
		for _, c := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} {
			if !codes[c] {
				t.Errorf("%s lacks %s", typ, c)
			}
		}
		if typ == "Bundle" && codes["_text"] {
			t.Error("Bundle is not a DomainResource: no _text")
		}
	}
	if n := len(search.ResourceTypes()); n != 145 && n != 146 && n != 147 {
		t.Errorf("%d resource types", n)
	}
	if got := search.PatientCompartment("Observation"); !slices.Contains(got, "subject") || !slices.Contains(got, "performer") {
		t.Errorf("Observation compartment params %v", got)
	}
	if got := search.PatientCompartment("Patient"); !slices.Contains(got, "link") {
		t.Errorf("Patient compartment params %v", got)
	}
	if search.PatientCompartment("CodeSystem") != nil {
		t.Error("CodeSystem is not in the Patient compartment")
	}
	// Every compartment param exists for its type.
	for _, typ := range search.ResourceTypes() {
		for _, code := range search.PatientCompartment(typ) {
			if code == "{def}" {
				continue
			}
			if search.Lookup(typ, code) == nil {
				t.Errorf("compartment param %s.%s not in the registry", typ, code)
			}
		}
	}
}

func TestIndexed(t *testing.T) {
	n := 0
	for _, p := range search.AllParams() {
		if search.Indexed(p) {
			n++
		}
	}
	// 1,327 with elements, the hand-coded Patient deceased, the 46
	// composites (the two MolecularSequence ones with %resource components
	// through the FHIRPath engine), and the full-text _text and _content.
	// Not: Location-near (special) and _query (no expression).
	if n != 1376 {
		t.Errorf("%d indexed parameters, want 1376", n)
	}
	for _, c := range []struct {
		typ, code string
		want      bool
	}{
		{"Patient", "deceased", true}, {"Patient", "family", true}, {"Patient", "_text", true},
		{"Observation", "code-value-quantity", true}, {"Location", "near", false}, {"Patient", "_content", true},
	} {
		if got := search.Indexed(search.Lookup(c.typ, c.code)); got != c.want {
			t.Errorf("Indexed(%s.%s) = %v", c.typ, c.code, got)
		}
	}
}
