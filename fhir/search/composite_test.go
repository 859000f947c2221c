package search_test

import (
	"errors"
	"testing"

	"phix/fhir/search"
)

func TestParseComposite(t *testing.T) {
	q, _, err := search.Parse("Observation", mustQuery(t, "code-value-quantity=http://loinc.org|8480-6$gt100,|x$5||mg"), search.ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	c := q.Clauses[0]
	if len(c.Values) != 2 || len(c.Values[0].Components) != 2 {
		t.Fatalf("%+v", c)
	}
	code, val := c.Values[0].Components[0], c.Values[0].Components[1]
	if code.System != "http://loinc.org" || code.Code != "8480-6" || val.Prefix != search.PrefixGt || val.Num != 100 {
		t.Errorf("parts %+v %+v", code, val)
	}
	if v := c.Values[1].Components[1]; v.Code != "g" || v.Num != 0.005 {
		t.Errorf("second %+v", v)
	}
	for _, bad := range []string{
		"code-value-quantity=http://loinc.org|8480-6",      // one part
		"code-value-quantity=a$1$2",                        // three parts
		"code-value-quantity=a$",                           // empty part
		"code-value-quantity=a$xx100",                      // bad quantity
		"code-value-quantity:exact=a$1",                    // modifier
		"combo-code-value-concept=http://loinc.org|1$a\\q", // bad escape
	} {
		_, _, err := search.Parse("Observation", mustQuery(t, bad), search.ParseOptions{})
		var se *search.Error
		if !errors.As(err, &se) || se.Code != search.CodeInvalidValue && se.Code != search.CodeInvalidModifier {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, _, err := search.Parse("Observation", mustQuery(t, "code-value-quantity:missing=true"), search.ParseOptions{Strict: true}); err != nil {
		t.Errorf(":missing: %v", err)
	}
	// An escaped $ stays in the part.
	q, _, err = search.Parse("Observation", mustQuery(t, "combo-code-value-concept=http://x|a\\$b$http://y|c"), search.ParseOptions{Strict: true})
	if err != nil || q.Clauses[0].Values[0].Components[0].Code != "a$b" {
		t.Errorf("escaped $: %v %+v", err, q)
	}
}

func TestExtractComposite(t *testing.T) {
	r := decode(t, []byte(`{"resourceType":"Observation","id":"x",
	  "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
	  "component":[
	    {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
	    {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]}},
	    {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`))
	groups := map[int][]search.Entry{}
	for _, e := range search.Extract(r) {
		if e.Param == "component-code-value-quantity$0" || e.Param == "component-code-value-quantity$1" {
			groups[e.Group] = append(groups[e.Group], e)
		}
	}
	// The component without a value makes no group; groups are numbered densely.
	if len(groups) != 2 || len(groups[1]) != 2 || len(groups[2]) != 2 {
		t.Fatalf("groups %+v", groups)
	}
	if groups[1][0].Code != "8480-6" || groups[1][1].Num != 120 || groups[2][0].Code != "8462-4" || groups[2][1].Num != 80 {
		t.Errorf("groups %+v", groups)
	}
	if groups[1][1].Type != search.TypeQuantity || groups[1][0].Type != search.TypeToken {
		t.Errorf("types %+v", groups[1])
	}
	p := search.Lookup("Observation", "component-code-value-quantity")
	if got := search.ExtractParam(r, p); len(got) != 4 {
		t.Errorf("ExtractParam: %d entries", len(got))
	}
}
