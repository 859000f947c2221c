package policy

import (
	"encoding/json"
	"testing"
)

func TestDefault(t *testing.T) {
	p := Default()
	tests := []struct {
		parent, child string
		mode          Mode
		phi           bool
	}{
		{"HumanName", "family", Seal, true},
		{"HumanName", "id", 0, false},
		{"Address", "city", Seal, true},
		{"Address", "state", 0, false},
		{"Patient", "birthDate", SealKeepYear, true},
		{"Patient", "gender", 0, false},
		{"Patient", "contact", Seal, true},
		{"ContactPoint", "system", 0, false},
	}
	for _, tc := range tests {
		m, ok := p.Lookup(tc.parent, tc.child)
		if ok != tc.phi || m != tc.mode {
			t.Errorf("Lookup(%s, %s) = %v, %v", tc.parent, tc.child, m, ok)
		}
	}
	if !p.Extension("http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName") {
		t.Error("mothersMaidenName not PHI")
	}
	q, err := Load(p.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := q.Lookup("Patient", "birthDate"); !ok || m != SealKeepYear {
		t.Error("round trip lost @year")
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []string{
		``,
		`{"version":2}`,
		`{"version":1,"datatypes":{"string":["value"]}}`,
		`{"version":1,"datatypes":{"HumanName":[]}}`,
		`{"version":1,"datatypes":{"HumanName":["nope"]}}`,
		`{"version":1,"datatypes":{"HumanName":["id"]}}`,
		`{"version":1,"elements":["Patient"]}`,
		`{"version":1,"elements":["Nope.name"]}`,
		`{"version":1,"elements":["Patient.nope"]}`,
		`{"version":1,"elements":["Patient.gender@year"]}`,
		`{"version":1,"elements":["Patient.meta"]}`,
		`{"version":1,"extensions":["relative"]}`,
		`{"version":1,"unknown":true}`,
		`{"version":1} {}`,
	}
	for _, in := range tests {
		if _, err := Load([]byte(in)); err == nil {
			t.Errorf("Load(%s) accepted", in)
		}
	}
}

func FuzzLoad(f *testing.F) {
	b, _ := json.Marshal(DefaultFile())
	f.Add(b)
	f.Add([]byte(`{"version":1,"elements":["Patient.birthDate@year"]}`))
	f.Add([]byte(`{"version":1,"datatypes":{"Address":["*"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load(data)
		if err != nil {
			return
		}
		if _, err := Load(p.JSON()); err != nil {
			t.Fatalf("reloading a valid policy: %v", err)
		}
	})
}
