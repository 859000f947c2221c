package fhir

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParseValidate: no input may panic Parse, Validate, Marshal or
// Canonical, and whatever parses must survive a Marshal round trip.
func FuzzParseValidate(f *testing.F) {
	seeds := []string{
		`{"resourceType":"Patient","id":"a","name":[{"given":["x",null],"_given":[null,{"id":"i"}]}],"birthDate":"2000-02-29"}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity":{"value":1.5}}}]}`,
		`{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"group","item":[{"linkId":"2","type":"string"}]}]}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Organization","name":"o"}],"deceasedBoolean":true,"deceasedDateTime":"x"}`,
		`{"resourceType":"Parameters","parameter":[{"name":"r","resource":{"resourceType":"Patient"}}]}`,
		`{"resourceType":"Patient","id":"\ud83d\ude00","a":[1e999,-0.0,{}],"b":"\u0000"}`,
		`{"resourceType":1}`, `[]`, `{"a":{"a":{"a":{}}}}`, `{"resourceType":"Patient"} {}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if files, err := os.ReadDir("../../shared/testdata/fhir-test-cases/examples"); err == nil {
		for i, e := range files {
			if i%6 != 0 { // a sample keeps the seed corpus quick
				continue
			}
			if b, err := os.ReadFile("../../shared/testdata/fhir-test-cases/examples/" + e.Name()); err == nil && len(b) < 64<<10 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data, ParseOptions{MaxDepth: 32})
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		_ = Validate(r)
		c1, err := Canonical(r)
		if err != nil {
			t.Fatalf("canonical of parsed input: %v", err)
		}
		m, err := Marshal(r)
		if err != nil {
			t.Fatalf("marshal of parsed input: %v", err)
		}
		r2, err := Parse(m, ParseOptions{MaxDepth: 32})
		if err != nil {
			t.Fatalf("reparse of marshal output: %v", err)
		}
		c2, _ := Canonical(r2)
		if !bytes.Equal(c1, c2) {
			t.Fatal("canonical form changed across a round trip")
		}
	})
}
