package storetest

import (
	"testing"
	"time"

	"phix/fhir/search"
)

func testSearchString(t *testing.T, open Opener) {
	s := open(t)
	seed(t, s,
		res{"Patient", "a", []search.Entry{str("family", "Smith"), str("given", "John")}},
		res{"Patient", "b", []search.Entry{str("family", "Smithson"), str("given", "Jane")}},
		res{"Patient", "c", []search.Entry{str("family", "Goldsmith")}},
		res{"Patient", "d", []search.Entry{str("family", "smith")}},
		res{"Patient", "e", []search.Entry{str("family", "王"), str("family", "Wang")}},
		res{"Observation", "o", []search.Entry{str("family", "Smith")}},
	)
	fam := func(mod string, vals ...search.Value) *search.Query {
		return q("Patient", clause("family", search.TypeString, mod, vals...))
	}
	expect(t, s, fam("", sv("smith")), "Patient/a", "Patient/b", "Patient/d")
	expect(t, s, fam("", sv("SMI")), "Patient/a", "Patient/b", "Patient/d")
	expect(t, s, fam("", sv("smithson")), "Patient/b")
	expect(t, s, fam("", sv("smithsonian")))
	expect(t, s, fam("", sv("mith")))
	expect(t, s, fam("exact", sv("Smith")), "Patient/a")
	expect(t, s, fam("exact", sv("smith")), "Patient/d")
	expect(t, s, fam("exact", sv("Smit")))
	expect(t, s, fam("contains", sv("mith")), "Patient/a", "Patient/b", "Patient/c", "Patient/d")
	expect(t, s, fam("contains", sv("SON")), "Patient/b")
	expect(t, s, fam("", sv("王")), "Patient/e")
	expect(t, s, fam("exact", sv("王")), "Patient/e")
	expect(t, s, fam("", sv("gold"), sv("wang")), "Patient/c", "Patient/e")
	// A resource with several values for the param matches once.
	expect(t, s, fam("contains", sv("an"), sv("王")), "Patient/e")
	expect(t, s, q("Patient", clause("given", search.TypeString, "", sv("j"))), "Patient/a", "Patient/b")
}

func testSearchToken(t *testing.T, open Opener) {
	s := open(t)
	seed(t, s,
		res{"Patient", "a", []search.Entry{tok("identifier", "urn:mrn", "1"), tokText("gender", "http://hl7.org/fhir/administrative-gender", "male", "Male")}},
		res{"Patient", "b", []search.Entry{tok("identifier", "urn:other", "1"), tokText("gender", "http://hl7.org/fhir/administrative-gender", "female", "Female")}},
		res{"Patient", "c", []search.Entry{tok("identifier", "", "1"), tok("identifier", "urn:mrn", "2")}},
		res{"Patient", "d", nil},
		res{"Observation", "o", []search.Entry{tok("identifier", "urn:mrn", "1")}},
	)
	id := func(mod string, vals ...search.Value) *search.Query {
		return q("Patient", clause("identifier", search.TypeToken, mod, vals...))
	}
	expect(t, s, id("", cv("1")), "Patient/a", "Patient/b", "Patient/c")
	expect(t, s, id("", tv("urn:mrn", "1")), "Patient/a")
	expect(t, s, id("", tv("", "1")), "Patient/c") // |1: no system
	expect(t, s, id("", tv("urn:mrn", "")), "Patient/a", "Patient/c")
	expect(t, s, id("", tv("urn:mrn", "1"), tv("urn:other", "1")), "Patient/a", "Patient/b")
	expect(t, s, id("", cv("3")))
	// :not matches resources without a matching entry, including those without any.
	expect(t, s, id("not", tv("urn:mrn", "1")), "Patient/b", "Patient/c", "Patient/d")
	expect(t, s, id("not", cv("1")), "Patient/d")
	expect(t, s, id("not", cv("2"), tv("urn:other", "1")), "Patient/a", "Patient/d")
	g := func(mod string, vals ...search.Value) *search.Query {
		return q("Patient", clause("gender", search.TypeToken, mod, vals...))
	}
	expect(t, s, g("text", sv("mal")), "Patient/a")
	expect(t, s, g("text", sv("FEM")), "Patient/b")
	expect(t, s, g("", cv("male")), "Patient/a")
	expect(t, s, g("", cv("Male")))
}

func testSearchDate(t *testing.T, open Opener) {
	s := open(t)
	// Targets: a day, an instant inside that day, a later day, a period
	// spanning both days, an open-ended period and a month.
	inst := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	seed(t, s,
		res{"Observation", "day10", []search.Entry{day("date", 2024, 3, 10)}},
		res{"Observation", "inst", []search.Entry{date("date", inst, inst)}},
		res{"Observation", "day12", []search.Entry{day("date", 2024, 3, 12)}},
		res{"Observation", "span", []search.Entry{date("date", time.Date(2024, 3, 9, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 11, 23, 59, 59, 0, time.UTC))}},
		res{"Observation", "open", []search.Entry{date("date", time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC), search.MaxTime)}},
		res{"Observation", "old", []search.Entry{date("date", search.MinTime, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))}},
		res{"Observation", "none", nil},
	)
	dv := func(p search.Prefix, lo, hi time.Time) search.Value {
		return search.Value{Raw: string(p) + lo.Format(time.RFC3339), Prefix: p, Lo: lo, Hi: hi}
	}
	d10lo := time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)
	d10hi := d10lo.AddDate(0, 0, 1).Add(-time.Nanosecond)
	mar := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	marHi := mar.AddDate(0, 1, 0).Add(-time.Nanosecond)
	cases := []struct {
		p      search.Prefix
		lo, hi time.Time
		want   []string
	}{
		// eq: the search range contains the target range.
		{search.PrefixEq, d10lo, d10hi, []string{"day10", "inst"}},
		{"", d10lo, d10hi, []string{"day10", "inst"}},
		{search.PrefixEq, mar, marHi, []string{"day10", "inst", "day12", "span"}},
		{search.PrefixEq, inst, inst, []string{"inst"}},
		// ne: the search range does not contain the target range.
		{search.PrefixNe, d10lo, d10hi, []string{"day12", "span", "open", "old"}},
		// gt: the target extends above the search range.
		{search.PrefixGt, d10lo, d10hi, []string{"day12", "span", "open"}},
		// lt: the target extends below the search range.
		{search.PrefixLt, d10lo, d10hi, []string{"span", "old"}},
		// ge: gt or eq.
		{search.PrefixGe, d10lo, d10hi, []string{"day10", "inst", "day12", "span", "open"}},
		// le: lt or eq.
		{search.PrefixLe, d10lo, d10hi, []string{"day10", "inst", "span", "old"}},
		// sa: the target starts after the search range ends.
		{search.PrefixSa, d10lo, d10hi, []string{"day12", "open"}},
		// eb: the target ends before the search range starts.
		{search.PrefixEb, d10lo, d10hi, []string{"old"}},
		{search.PrefixEb, time.Date(2024, 3, 12, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 12, 23, 59, 59, 0, time.UTC), []string{"day10", "inst", "span", "old"}},
		// ap: overlap with the range widened by 10% of the distance to now;
		// the year-2020 target is too far from a March 2024 day.
		{search.PrefixAp, inst, inst, []string{"day10", "inst", "day12", "span", "open"}},
		{search.PrefixGt, search.MaxTime, search.MaxTime, nil},
	}
	for _, c := range cases {
		var want []string
		for _, id := range c.want {
			want = append(want, "Observation/"+id)
		}
		expect(t, s, q("Observation", clause("date", search.TypeDate, "", dv(c.p, c.lo, c.hi))), want...)
	}
	// Open-ended search value bounds (zero times) mean no bound.
	expect(t, s, q("Observation", clause("date", search.TypeDate, "", search.Value{Prefix: search.PrefixLt, Lo: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)})), "Observation/old")
}

func testSearchNumber(t *testing.T, open Opener) {
	s := open(t)
	// Stored with their precision ranges ([lo, hi) as the extractor gives).
	seed(t, s,
		res{"RiskAssessment", "n100", []search.Entry{num("probability", 100, 99.5, 100.5)}},
		res{"RiskAssessment", "n1004", []search.Entry{num("probability", 100.4, 100.35, 100.45)}},
		res{"RiskAssessment", "n99", []search.Entry{num("probability", 99, 98.5, 99.5)}},
		res{"RiskAssessment", "n120", []search.Entry{num("probability", 120, 119.5, 120.5)}},
		res{"RiskAssessment", "neg", []search.Entry{num("probability", -5, 0, 0)}},
		res{"RiskAssessment", "none", nil},
	)
	nv := func(p search.Prefix, n, lo, hi float64) search.Value {
		return search.Value{Raw: string(p), Prefix: p, Num: n, NumLo: lo, NumHi: hi}
	}
	cases := []struct {
		v    search.Value
		want []string
	}{
		{nv("", 100, 99.5, 100.5), []string{"n100", "n1004"}},
		{nv(search.PrefixEq, 100.0, 99.95, 100.05), []string{"n100"}},
		{nv(search.PrefixEq, 100, 100, 100), []string{"n100"}}, // exact: no precision range
		{nv(search.PrefixNe, 100, 99.5, 100.5), []string{"n99", "n120", "neg"}},
		{nv(search.PrefixGt, 100, 99.5, 100.5), []string{"n1004", "n120"}},
		{nv(search.PrefixGe, 100, 99.5, 100.5), []string{"n100", "n1004", "n120"}},
		{nv(search.PrefixLt, 100, 99.5, 100.5), []string{"n99", "neg"}},
		{nv(search.PrefixLe, 100, 99.5, 100.5), []string{"n100", "n99", "neg"}},
		{nv(search.PrefixSa, 100, 99.5, 100.5), []string{"n120"}},
		{nv(search.PrefixEb, 100, 99.5, 100.5), []string{"n99", "neg"}},
		{nv(search.PrefixAp, 111, 110.5, 111.5), []string{"n100", "n1004", "n120"}},
		{nv(search.PrefixLt, -4, -4.5, -3.5), []string{"neg"}},
		{nv("", -5, -5.5, -4.5), []string{"neg"}},
	}
	for _, c := range cases {
		var want []string
		for _, id := range c.want {
			want = append(want, "RiskAssessment/"+id)
		}
		expect(t, s, q("RiskAssessment", clause("probability", search.TypeNumber, "", c.v)), want...)
	}
}

func testSearchQuantity(t *testing.T, open Opener) {
	s := open(t)
	const ucum = "http://unitsofmeasure.org"
	seed(t, s,
		res{"Observation", "mg5", []search.Entry{qty("value-quantity", 5.4, ucum, "mg")}},
		res{"Observation", "g5", []search.Entry{qty("value-quantity", 5.4, ucum, "g")}},
		res{"Observation", "mgLocal", []search.Entry{qty("value-quantity", 5.4, "urn:local", "mg")}},
		res{"Observation", "mg10", []search.Entry{qty("value-quantity", 10, ucum, "mg")}},
		res{"Observation", "none", nil},
	)
	qv := func(p search.Prefix, n float64, system, code string) search.Value {
		return search.Value{Raw: "q", Prefix: p, Num: n, NumLo: n - 0.05, NumHi: n + 0.05, System: system, HasSystem: system != "", Code: code}
	}
	vq := func(v search.Value) *search.Query {
		return q("Observation", clause("value-quantity", search.TypeQuantity, "", v))
	}
	expect(t, s, vq(qv("", 5.4, ucum, "mg")), "Observation/mg5")
	expect(t, s, vq(qv("", 5.4, "", "mg")), "Observation/mg5", "Observation/mgLocal")
	expect(t, s, vq(qv("", 5.4, "", "")), "Observation/mg5", "Observation/g5", "Observation/mgLocal")
	expect(t, s, vq(qv(search.PrefixGt, 5.4, ucum, "mg")), "Observation/mg10")
	expect(t, s, vq(qv(search.PrefixLe, 10, "", "mg")), "Observation/mg5", "Observation/mgLocal", "Observation/mg10")
	expect(t, s, vq(qv(search.PrefixNe, 5.4, ucum, "mg")), "Observation/mg10")
}

func testSearchReference(t *testing.T, open Opener) {
	s := open(t)
	withIdent := ref("subject", "", "")
	withIdent.System, withIdent.Code = "urn:mrn", "123"
	versioned := ref("subject", "Patient", "p1")
	versioned.RefVersion = "2"
	seed(t, s,
		res{"Observation", "o1", []search.Entry{ref("subject", "Patient", "p1")}},
		res{"Observation", "o2", []search.Entry{ref("subject", "Group", "p1")}},
		res{"Observation", "o3", []search.Entry{ref("subject", "Patient", "p2"), ref("performer", "Practitioner", "dr")}},
		res{"Observation", "o4", []search.Entry{{Param: "subject", Type: search.TypeReference, URL: "http://other.org/fhir/Patient/9"}}},
		res{"Observation", "o5", []search.Entry{withIdent}},
		res{"Observation", "o6", []search.Entry{versioned}},
		res{"Observation", "o7", nil},
	)
	rv := func(typ, id string) search.Value {
		return search.Value{Raw: typ + "/" + id, RefType: typ, RefID: id}
	}
	sub := func(mod string, vals ...search.Value) *search.Query {
		return q("Observation", clause("subject", search.TypeReference, mod, vals...))
	}
	expect(t, s, sub("", rv("Patient", "p1")), "Observation/o1", "Observation/o6")
	expect(t, s, sub("", rv("", "p1")), "Observation/o1", "Observation/o2", "Observation/o6")
	expect(t, s, sub("Patient", rv("", "p1")), "Observation/o1", "Observation/o6")
	expect(t, s, sub("Group", rv("", "p1")), "Observation/o2")
	expect(t, s, sub("Group", rv("Patient", "p1")))
	v := rv("Patient", "p1")
	v.RefVersion = "2"
	expect(t, s, sub("", v), "Observation/o6")
	v.RefVersion = "1"
	expect(t, s, sub("", v))
	expect(t, s, sub("", search.Value{Raw: "u", URL: "http://other.org/fhir/Patient/9"}), "Observation/o4")
	expect(t, s, sub("identifier", tv("urn:mrn", "123")), "Observation/o5")
	expect(t, s, sub("identifier", cv("123")), "Observation/o5")
	expect(t, s, sub("identifier", tv("urn:other", "123")))
	expect(t, s, sub("", rv("Patient", "p2"), rv("Group", "p1")), "Observation/o2", "Observation/o3")
	expect(t, s, q("Observation", clause("performer", search.TypeReference, "", rv("Practitioner", "dr"))), "Observation/o3")
}

func testSearchURI(t *testing.T, open Opener) {
	s := open(t)
	seed(t, s,
		res{"ValueSet", "a", []search.Entry{uri("url", "http://acme.org/fhir/ValueSet/123")}},
		res{"ValueSet", "b", []search.Entry{uri("url", "http://acme.org/fhir/ValueSet/1234")}},
		res{"ValueSet", "c", []search.Entry{uri("url", "http://acme.org/fhir")}},
		res{"ValueSet", "d", []search.Entry{uri("url", "urn:oid:1.2.3")}},
	)
	u := func(mod, val string) *search.Query {
		return q("ValueSet", clause("url", search.TypeURI, mod, search.Value{Raw: val, URL: val}))
	}
	expect(t, s, u("", "http://acme.org/fhir/ValueSet/123"), "ValueSet/a")
	expect(t, s, u("", "http://acme.org/fhir/ValueSet/12"))
	expect(t, s, u("below", "http://acme.org/fhir/ValueSet/123"), "ValueSet/a", "ValueSet/b")
	expect(t, s, u("below", "http://acme.org/fhir"), "ValueSet/a", "ValueSet/b", "ValueSet/c")
	expect(t, s, u("above", "http://acme.org/fhir/ValueSet/123/_history/5"), "ValueSet/a", "ValueSet/c")
	expect(t, s, u("", "urn:oid:1.2.3"), "ValueSet/d")
}
