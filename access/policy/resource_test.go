package policy_test

import (
	"slices"
	"testing"

	"phix/access/policy"
	"phix/fhir"
)

func TestResourceFrom(t *testing.T) {
	for _, c := range []struct {
		js     string
		class  string
		labels []string
	}{
		{`{"resourceType":"Observation","status":"final","code":{"text":"x"},"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"},{"code":"PSY"}]}}`, "clinical", []string{"V", "PSY"}},
		{`{"resourceType":"Patient","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"PSEUDED"}]}}`, "deidentified", []string{"PSEUDED"}},
		{`{"resourceType":"Patient"}`, "demographic", nil},
		{`{"resourceType":"Consent","status":"active","scope":{"text":"x"},"category":[{"text":"x"}]}`, "consent", nil},
	} {
		r, err := fhir.Parse([]byte(c.js), fhir.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := policy.ResourceFrom(r, "hospital-a")
		if got.DataClass != c.class || !slices.Equal(got.Labels, c.labels) || got.Org != "hospital-a" || got.Type != r.Type {
			t.Fatalf("%s: %+v", r.Type, got)
		}
	}
	if policy.ResourceFrom(nil, "").Type != "" {
		t.Fatal("nil resource")
	}
}
