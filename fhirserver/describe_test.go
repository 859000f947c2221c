package fhirserver

import (
	"reflect"
	"testing"

	"phix/consent"
	"phix/fhir"
	"phix/internal/testenv"
)

// TestDescribeMatchesConsent: the enforcement layer's describeResource
// gives exactly consent.DescribeResource's answer, over every Synthea
// resource and a few hand-made edge cases.
func TestDescribeMatchesConsent(t *testing.T) {
	raws := testenv.SyntheaResources(t)
	if testing.Short() && len(raws) > 2000 {
		raws = raws[:2000]
	}
	extra := []string{
		`{"resourceType":"Observation","id":"x","meta":{"security":[{"system":"s","code":"R"},{"code":""}],"profile":["http://p"]},"effectivePeriod":{"end":"2020-01-01"},"issued":"2021-01-01T00:00:00Z","performer":[{"reference":"Practitioner/1"},{"reference":"Practitioner/1"}]}`,
		`{"resourceType":"Consent","id":"c","patient":{"reference":"Patient/p"},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}]}`,
		`{"resourceType":"Patient","id":"p","generalPractitioner":[{"reference":"Practitioner/9"}]}`,
	}
	n := 0
	check := func(data []byte) {
		r, err := fhir.Parse(data, fhir.ParseOptions{})
		if err != nil {
			return
		}
		n++
		got, want := describeResource(r), consent.DescribeResource(r)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s/%s:\n got %+v\nwant %+v", r.Type, r.ID, got, want)
		}
	}
	for _, raw := range raws {
		check(raw)
	}
	for _, e := range extra {
		check([]byte(e))
	}
	if n < len(extra) {
		t.Fatalf("only %d resources checked", n)
	}
}
