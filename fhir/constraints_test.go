package fhir

import (
	"slices"
	"testing"
)

func TestConstraints(t *testing.T) {
	all := Constraints()
	if len(all) < 200 {
		t.Fatalf("%d constraints", len(all))
	}
	keys := func(path string) []string {
		var ks []string
		for _, c := range ConstraintsOn(path) {
			ks = append(ks, c.Key)
		}
		slices.Sort(ks)
		return ks
	}
	tests := []struct {
		path string
		want []string
	}{
		{"Patient", []string{"dom-2", "dom-3", "dom-4", "dom-5", "dom-6"}},
		{"Patient.contact", []string{"ele-1", "pat-1"}},
		{"Patient.extension", []string{"ele-1", "ext-1"}},
		{"Period", []string{"ele-1", "per-1"}},
		{"SimpleQuantity", []string{"ele-1", "qty-3", "sqty-1"}},
		{"Extension", []string{"ele-1", "ext-1"}},
		{"Observation.value[x]", []string{"ele-1"}},
		{"Patient.id", nil},
		{"Nope", nil},
	}
	for _, tc := range tests {
		if got := keys(tc.path); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.path, got, tc.want)
		}
	}
	n := 0
	for _, c := range all {
		if c.Severity != SeverityError && c.Severity != SeverityWarning {
			t.Errorf("%s: severity %q", c.Key, c.Severity)
		}
		if c.Key == "ele-1" {
			n += len(c.Paths)
		}
	}
	if n < 6000 {
		t.Errorf("ele-1 on %d paths", n)
	}
}

func TestValidationType(t *testing.T) {
	tests := []struct{ parent, name, want string }{
		{"Dosage.doseAndRate", "doseQuantity", "SimpleQuantity"},
		{"Observation", "valueQuantity", "Quantity"},
		{"Patient", "name", "HumanName"},
		{"Patient", "contact", "Patient.contact"},
		{"Patient", "birthDate", "date"},
		{"Bundle.entry", "resource", "Resource"},
		{"Patient", "nope", ""},
		{"Nope", "x", ""},
	}
	for _, tc := range tests {
		if got := ValidationType(tc.parent, tc.name); got != tc.want {
			t.Errorf("ValidationType(%s, %s) = %q, want %q", tc.parent, tc.name, got, tc.want)
		}
	}
}
