package search_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"phix/fhir/search"
)

// FuzzParse: any query string parses or fails with a *search.Error, never
// panics, and a failure never quotes a value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"family=Chalmers&given:exact=Peter",
		"birthdate=ge1974-12-25&birthdate=lt2000",
		"code=http://loinc.org|29463-7,|x,sys|",
		`identifier=a\|b\,c\\`,
		"value-quantity=ap5.4|http://unitsofmeasure.org|mg",
		"subject=Patient/1/_history/2&subject:identifier=a|b",
		"_count=10&_offset=5&_sort=-date,_id&_include:iterate=Observation:subject:Patient",
		"_has:Observation:patient:code=1&subject.name=x",
		"date=2024-03-01T10:00:00.123+08:00",
		"probability=1e2,-3.5,gt.5",
		"_elements=a,b&_summary=count&_total=none",
		"gender:missing=true&family:contains=ab",
		"%zz=1",
		"code-value-quantity=http://loinc.org|8480-6$gt100&combo-code-value-concept=a\\$b$c",
		"subject:Patient.organization.name=x&patient._has:Observation:subject:code=1",
		"_has:Observation:has-member:_has:Observation:has-member:status=final",
	} {
		f.Add("Observation", s)
	}
	f.Add("", "_type=Patient,Observation&_id=1")
	f.Add("Patient", "family=\\")
	f.Fuzz(func(t *testing.T, typ, raw string) {
		values, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		for _, strict := range []bool{false, true} {
			q, _, err := search.Parse(typ, values, search.ParseOptions{Strict: strict})
			if err != nil {
				var se *search.Error
				if !errors.As(err, &se) || se.Code == "" {
					t.Fatalf("error is not a coded *search.Error: %v", err)
				}
				continue
			}
			for _, c := range q.Clauses {
				if c.Param == nil || len(c.Values) == 0 {
					t.Fatalf("clause without param or values: %+v", c)
				}
				for _, v := range c.Values {
					if !v.Lo.IsZero() && v.Lo.After(v.Hi) {
						t.Fatalf("inverted date range %+v", v)
					}
					if v.NumLo > v.NumHi {
						t.Fatalf("inverted number range %+v", v)
					}
				}
			}
		}
	})
}

// FuzzDateRange: DateRange never panics and returns ordered ranges.
func FuzzDateRange(f *testing.F) {
	for _, s := range []string{"2024", "2024-02", "2024-02-29", "2024-03-01T10:00", "2024-03-01T10:00:05.123456789-05:00", "9999-12-31T23:59:59Z", "0000-01-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, ok := search.DateRange(s)
		if ok && lo.After(hi) {
			t.Fatalf("DateRange(%q) inverted: %v > %v", s, lo, hi)
		}
		_, _, _, _ = search.NumberRange(s)
		_, _ = search.ParseReference(s)
		_ = search.NormalizeString(s)
	})
}

// FuzzExtract: Extract never panics on any JSON a client could send.
func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","id":"p","name":[{"family":"Chalmers","given":["Peter"]}],"birthDate":"1974-12-25"}`,
		`{"resourceType":"Observation","id":"o","valueQuantity":{"value":1e400},"subject":{"reference":"Patient/1"},"effectivePeriod":{"start":"x"}}`,
		`{"resourceType":"Condition","onsetRange":{"low":{"value":"5"},"high":{"value":[]}},"code":{"coding":[null,{"code":1}]}}`,
		`{"resourceType":"Bundle","entry":[{"resource":[]}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !strings.HasPrefix(s, "{") {
			return
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) != nil {
			return
		}
		for _, e := range search.Extract(resourceOf(m)) {
			if e.Param == "" {
				t.Fatal("entry without param")
			}
		}
	})
}
