package deid

import (
	"context"
	"strings"
	"testing"

	"phix/fhir"
	"phix/suite"
)

// identifying collects every direct identifier of the input's people.
func identifying(b *fhir.Resource, keepsCity bool) []string {
	var out []string
	add := func(v any) {
		if s, ok := v.(string); ok && len(s) >= 4 {
			out = append(out, s)
		}
	}
	for _, en := range arr(b.Object["entry"]) {
		res, _ := en.(map[string]any)["resource"].(map[string]any)
		switch res["resourceType"] {
		case "Patient", "Practitioner", "RelatedPerson", "Person":
		default:
			continue
		}
		for _, n := range arr(res["name"]) {
			m := n.(map[string]any)
			add(m["family"])
			for _, g := range arr(m["given"]) {
				add(g)
			}
		}
		for _, id := range arr(res["identifier"]) {
			add(id.(map[string]any)["value"])
		}
		for _, tc := range arr(res["telecom"]) {
			add(tc.(map[string]any)["value"])
		}
		if res["resourceType"] != "Patient" {
			continue // a practice address is not the person's
		}
		for _, a := range arr(res["address"]) {
			m := a.(map[string]any)
			for _, l := range arr(m["line"]) {
				add(l)
			}
			if !keepsCity {
				add(m["city"])
			}
			if z, ok := m["postalCode"].(string); ok {
				out = append(out, "\""+z+"\"") // quoted: a bare ZIP matches inside numbers
			}
		}
		if bd, ok := res["birthDate"].(string); ok {
			out = append(out, bd)
		}
		for _, ext := range arr(res["extension"]) {
			m := ext.(map[string]any)
			if m["url"] == "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName" {
				add(m["valueString"])
			}
		}
	}
	return out
}

// containsToken finds v not embedded in a longer word or number.
func containsToken(text, v string) bool {
	for off := 0; ; {
		i := strings.Index(text[off:], v)
		if i < 0 {
			return false
		}
		s, e := off+i, off+i+len(v)
		if (s == 0 || !isAlnum(text[s-1])) && (e == len(text) || !isAlnum(text[e])) {
			return true
		}
		off = s + 1
	}
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func TestProfilesOverSynthea(t *testing.T) {
	bundles := syntheaBundles(t)
	for _, prof := range []string{"safe-harbor", "china", "limited-data-set", "expert"} {
		t.Run(prof, func(t *testing.T) {
			t.Parallel() // one engine per profile; the bundles are only read
			e := engine(t, prof, testKeys(t, suite.Intl, 1))
			if prof == "expert" {
				e.risk = nil // the risk gate has its own tests; here: the transformation
			}
			for name, b := range bundles {
				out, err := e.Bundle(context.Background(), b)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				data, err := fhir.Marshal(out)
				if err != nil {
					t.Fatal(err)
				}
				text := string(data)
				if prof == "safe-harbor" || prof == "china" || prof == "expert" {
					for _, v := range identifying(b, prof == "china") {
						if containsToken(text, v) {
							t.Errorf("%s: %s output still contains an identifier of the input (len %d)", name, prof, len(v))
						}
					}
				}
				if issues := fhir.Validate(out); len(issues) > 0 {
					for _, is := range issues[:min(5, len(issues))] {
						t.Errorf("%s: invalid output: %s %s %v", name, is.Code, is.Diagnostics, is.Expression)
					}
				}
			}
		})
	}
}
