package fhir

import (
	"strings"
	"testing"
)

func TestSecurityLabels(t *testing.T) {
	conf := func(code string) string {
		return `{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"` + code + `"}`
	}
	for _, c := range []struct {
		name     string
		security string // the meta.security array
		issues   int
		conf     string
		labels   int
	}{
		{"none", `[]`, 0, "", 0},
		{"normal", `[` + conf("N") + `]`, 0, "N", 1},
		{"very restricted with sensitivity", `[` + conf("V") + `,{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]`, 0, "V", 2},
		{"integrity and other systems", `[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"MASKED"},{"system":"urn:example:local","code":"x1"}]`, 0, "", 2},
		{"bad confidentiality", `[` + conf("Q") + `]`, 1, "", 1},
		{"two confidentialities", `[` + conf("N") + `,` + conf("R") + `]`, 1, "R", 2},
		{"no system", `[{"code":"R"}]`, 1, "", 1},
		{"no code", `[{"system":"urn:x"}]`, 1, "", 0},
		{"duplicate", `[{"system":"urn:x","code":"a"},{"system":"urn:x","code":"a"}]`, 1, "", 2},
		{"whitespace", `[{"system":"urn:x","code":"a b"}]`, 1, "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(`{"resourceType":"Patient","id":"p","meta":{"security":`+c.security+`}}`), ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			issues := ValidateSecurityLabels(r)
			if len(issues) != c.issues {
				t.Fatalf("issues %+v", issues)
			}
			for _, is := range issues {
				if !strings.HasPrefix(is.Expression[0], "Patient.meta.security[") || is.Severity != "error" {
					t.Fatalf("issue %+v", is)
				}
			}
			got, ok := Confidentiality(r)
			if got != c.conf || ok != (c.conf != "") {
				t.Fatalf("confidentiality %q %v", got, ok)
			}
			if n := len(SecurityLabels(r)); n != c.labels {
				t.Fatalf("%d labels", n)
			}
		})
	}
	r, _ := Parse([]byte(`{"resourceType":"Patient","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}}`), ParseOptions{})
	if !HasSecurityLabel(r, SystemActCode, "PSY") || HasSecurityLabel(r, SystemActCode, "HIV") {
		t.Fatal("HasSecurityLabel")
	}
	if SecurityLabels(nil) != nil || ValidateSecurityLabels(&Resource{}) != nil {
		t.Fatal("nil resource")
	}
}
