package storetest

import (
	"testing"

	"phix/fhir/search"
)

// component returns entry e as component k of composite code in group g.
func component(code string, k, g int, e search.Entry) search.Entry {
	e.Param = search.ComponentCode(code, k)
	e.Group = g
	return e
}

func testSearchComposite(t *testing.T, open Opener) {
	s := open(t)
	const cvq = "component-code-value-quantity"
	bp := func(sys, dia float64) []search.Entry {
		return []search.Entry{
			component(cvq, 0, 1, tok("", "http://loinc.org", "8480-6")),
			component(cvq, 1, 1, qty("", sys, "http://unitsofmeasure.org", "mm[Hg]")),
			component(cvq, 0, 2, tok("", "http://loinc.org", "8462-4")),
			component(cvq, 1, 2, qty("", dia, "http://unitsofmeasure.org", "mm[Hg]")),
			// A plain entry under the same code never takes part.
			tok(search.ComponentCode(cvq, 0), "http://loinc.org", "9999-9"),
		}
	}
	seed(t, s,
		res{"Observation", "high", bp(150, 80)},
		res{"Observation", "crossed", bp(90, 130)},
		res{"Observation", "none", []search.Entry{tok("code", "http://loinc.org", "8480-6")}},
	)
	prm := &search.Param{Code: cvq, Type: search.TypeComposite, ComponentParams: []*search.Param{
		param("component-code", search.TypeToken), param("component-value-quantity", search.TypeQuantity),
	}}
	val := func(code string, p search.Prefix, n float64) search.Value {
		return search.Value{Raw: code, Components: []search.Value{
			tv("http://loinc.org", code),
			{Raw: "n", Prefix: p, Num: n, NumLo: n - 0.5, NumHi: n + 0.5},
		}}
	}
	cl := func(mod string, vs ...search.Value) search.Clause {
		return search.Clause{Param: prm, Modifier: mod, Values: vs}
	}
	for _, tc := range []struct {
		name string
		c    search.Clause
		want []string
	}{
		{"same component", cl("", val("8480-6", search.PrefixGt, 100)), []string{"Observation/high"}},
		{"not across components", cl("", val("8462-4", search.PrefixGt, 100)), []string{"Observation/crossed"}},
		{"eq", cl("", val("8462-4", "", 80)), []string{"Observation/high"}},
		{"or", cl("", val("8480-6", search.PrefixGt, 100), val("8462-4", search.PrefixGt, 100)), []string{"Observation/crossed", "Observation/high"}},
		{"group 0 ignored", cl("", val("9999-9", search.PrefixGt, 0)), nil},
		{"missing", cl("missing", missing(true)), []string{"Observation/none"}},
		{"present", cl("missing", missing(false)), []string{"Observation/crossed", "Observation/high"}},
	} {
		t.Run(tc.name, func(t *testing.T) { expect(t, s, q("Observation", tc.c), tc.want...) })
	}
	// Chained into a composite: patients with a high systolic reading.
	seed(t, s, res{"Observation", "link", []search.Entry{ref("subject", "Patient", "p")}}, res{"Patient", "p", nil})
	put(t, s, write("Observation", "high", 2, append(bp(150, 80), ref("subject", "Patient", "p"))...))
	expect(t, s, q("Patient", chained(cl("", val("8480-6", search.PrefixGt, 100)), has("Observation", "subject"))), "Patient/p")
}
