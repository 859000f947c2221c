package fhirserver

import (
	"os"
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
		got, want := describeResource(r, consent.AllFields), consent.DescribeResource(r)
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

// TestBriefDescription: the first-view description from the members
// ParseMembers keeps (lazyResource.brief) equals the one from the whole
// resource, and adding fields to it (subject.with) equals describing them
// at once, over every Synthea resource, the R4 examples and edge cases
// (contained patients, several patients, references by URL).
func TestBriefDescription(t *testing.T) {
	raws := testenv.SyntheaResources(t)
	if testing.Short() && len(raws) > 2000 {
		raws = raws[:2000]
	}
	for _, f := range testenv.ExampleFiles(t) {
		if b, err := os.ReadFile(f); err == nil {
			raws = append(raws, b)
		}
	}
	for _, e := range []string{
		`{"resourceType":"Observation","id":"x","meta":{"security":[{"system":"s","code":"R"}]},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p"}]}`,
		`{"resourceType":"Group","id":"g","member":[{"entity":{"reference":"Patient/1"}},{"entity":{"reference":"Patient/2"}}]}`,
		`{"resourceType":"Observation","id":"y","subject":{"reference":"https://h/fhir/Patient/7/_history/2"},"performer":[{"reference":"Patient/8"}]}`,
		`{"resourceType":"Encounter","id":"e","subject":{"reference":"Patient/1"},"text":{"div":"<div>\"x\"</div>"},"participant":[{"individual":{"reference":"Practitioner/1"}}]}`,
	} {
		raws = append(raws, []byte(e))
	}
	n := 0
	for _, raw := range raws {
		full, err := fhir.Parse(raw, fhir.ParseOptions{})
		if err != nil {
			continue
		}
		n++
		brief, err := (&lazyResource{body: raw}).brief(full.Type)
		if err != nil {
			t.Fatalf("%s/%s: brief: %v", full.Type, full.ID, err)
		}
		got, want := describe(brief, 0), describe(full, 0)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s/%s:\n got %+v\nwant %+v", full.Type, full.ID, got, want)
		}
		if gotAll, wantAll := got.with(full, consent.AllFields), describe(full, consent.AllFields); !reflect.DeepEqual(gotAll, wantAll) {
			t.Fatalf("%s/%s: with(AllFields):\n got %+v\nwant %+v", full.Type, full.ID, gotAll, wantAll)
		}
	}
	if n < 4 {
		t.Fatalf("only %d resources checked", n)
	}
}
