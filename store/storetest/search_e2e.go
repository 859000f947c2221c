package storetest

import (
	"net/url"
	"testing"

	"phix/fhir"
	"phix/fhir/search"
	"phix/store"
)

// e2eResources are real resource bodies: their index comes from
// search.Extract and the queries from search.Parse, so the parser, the
// extractor and the store are tested together.
var e2eResources = []string{
	`{"resourceType":"Organization","id":"acme","name":"Acme Hospital"}`,
	`{"resourceType":"Patient","id":"p1","name":[{"family":"Peter","given":["Ann"]}],"managingOrganization":{"reference":"Organization/acme"}}`,
	`{"resourceType":"Patient","id":"p2","name":[{"family":"Zhang"}],
	  "identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"},{"system":"http://x","code":"local"}]},"system":"urn:h","value":"446053"},
	    {"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"SS"}]},"value":"999"}]}`,
	`{"resourceType":"Observation","id":"bp1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
	  "subject":{"reference":"Patient/p1"},
	  "component":[
	    {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":150,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
	    {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
	`{"resourceType":"Observation","id":"bp2","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
	  "subject":{"reference":"Patient/p2"},
	  "component":[
	    {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":90,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
	    {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":130,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
	`{"resourceType":"Observation","id":"hr","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
	  "subject":{"reference":"Patient/p1"},"valueQuantity":{"value":72,"system":"http://unitsofmeasure.org","code":"/min"}}`,
	`{"resourceType":"Observation","id":"dose","status":"final","code":{"text":"dose"},
	  "valueQuantity":{"value":5000,"unit":"µg","system":"http://unitsofmeasure.org","code":"ug"}}`,
	`{"resourceType":"Observation","id":"glucose","status":"final","code":{"text":"glucose"},
	  "valueQuantity":{"value":100,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`,
}

func testSearchEndToEnd(t *testing.T, open Opener) {
	s := open(t)
	var ws []*store.Write
	for _, body := range e2eResources {
		r, err := fhir.Parse([]byte(body), fhir.ParseOptions{})
		if err != nil {
			t.Fatalf("parse resource: %v", err)
		}
		w := write(r.Type, r.ID, 1, search.Extract(r)...)
		ws = append(ws, w)
	}
	put(t, s, ws...)
	for _, tc := range []struct {
		typ, query string
		want       []string
	}{
		{"Observation", "component-code-value-quantity=http://loinc.org|8480-6$gt100", []string{"Observation/bp1"}},
		{"Observation", "component-code-value-quantity=http://loinc.org|8462-4$gt100", []string{"Observation/bp2"}},
		{"Observation", "combo-code-value-quantity=http://loinc.org|8867-4$lt100", []string{"Observation/hr"}},
		{"Observation", "code-value-quantity=http://loinc.org|8867-4$72", []string{"Observation/hr"}},
		{"Observation", "code-value-quantity=http://loinc.org|85354-9$72", nil},
		{"Observation", "subject:Patient.name=peter", []string{"Observation/bp1", "Observation/hr"}},
		{"Observation", "patient.organization.name=acme", []string{"Observation/bp1", "Observation/hr"}},
		{"Observation", "subject.name=zhang&code=85354-9", []string{"Observation/bp2"}},
		{"Patient", "_has:Observation:subject:code=8867-4", []string{"Patient/p1"}},
		{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053", []string{"Patient/p2"}},
		{"Patient", "identifier:of-type=http://x|local|446053", []string{"Patient/p2"}},
		{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|999", nil},
		{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|999", []string{"Patient/p2"}},
		{"Patient", "identifier=urn:h|446053", []string{"Patient/p2"}},
		{"Patient", "identifier:missing=true", []string{"Patient/p1"}},
		{"Observation", "value-quantity=5|http://unitsofmeasure.org|mg", []string{"Observation/dose"}},
		{"Observation", "value-quantity=0.005||g", []string{"Observation/dose"}},
		{"Observation", "value-quantity=5000||ug", []string{"Observation/dose"}},
		{"Observation", "value-quantity=gt4.9||mg", []string{"Observation/dose"}},
		{"Observation", "value-quantity=lt5||mg", nil},
		{"Observation", "value-quantity=1|http://unitsofmeasure.org|g/L", []string{"Observation/glucose"}},
		{"Observation", "value-quantity=100||mg/dL", []string{"Observation/glucose"}},
		{"Observation", "value-quantity=72||/min", []string{"Observation/hr"}},
		{"Observation", "value-quantity=1.2||/s", []string{"Observation/hr"}},
		{"Patient", "_has:Observation:subject:component-code-value-quantity=http://loinc.org|8462-4$gt100", []string{"Patient/p2"}},
		{"Organization", "_has:Patient:organization:_has:Observation:subject:code=85354-9", []string{"Organization/acme"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			vals, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			qq, warns, err := search.Parse(tc.typ, vals, search.ParseOptions{Strict: true})
			if err != nil || len(warns) > 0 {
				t.Fatalf("parse: %v %v", err, warns)
			}
			qq.Total = search.TotalAccurate
			expect(t, s, qq, tc.want...)
		})
	}
}
