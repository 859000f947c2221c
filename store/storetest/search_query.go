package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
)

func testSearchIDLastUpdated(t *testing.T, open Opener) {
	s := open(t)
	// Versions stamp t0 + version minutes: write a at v1, b at v1..v3.
	put(t, s, write("Patient", "a", 1), write("Patient", "b", 1), write("Patient", "c", 1))
	put(t, s, write("Patient", "b", 2))
	put(t, s, write("Patient", "b", 3))
	idq := func(mod string, vals ...search.Value) *search.Query {
		return q("Patient", clause("_id", search.TypeToken, mod, vals...))
	}
	expect(t, s, idq("", cv("a")), "Patient/a")
	expect(t, s, idq("", cv("a"), cv("c"), cv("zz")), "Patient/a", "Patient/c")
	expect(t, s, idq("not", cv("a")), "Patient/b", "Patient/c")
	expect(t, s, idq("missing", missing(true)))
	expect(t, s, idq("missing", missing(false)), "Patient/a", "Patient/b", "Patient/c")
	lu := func(p search.Prefix, lo, hi time.Time) *search.Query {
		return q("Patient", clause("_lastUpdated", search.TypeDate, "", search.Value{Raw: "lu", Prefix: p, Lo: lo, Hi: hi}))
	}
	at1 := t0.Add(time.Minute)
	at3 := t0.Add(3 * time.Minute)
	expect(t, s, lu(search.PrefixEq, at1, at1), "Patient/a", "Patient/c")
	expect(t, s, lu(search.PrefixGt, at1, at1.Add(time.Second-1)), "Patient/b")
	expect(t, s, lu(search.PrefixGe, at3, at3), "Patient/b")
	expect(t, s, lu(search.PrefixLt, at3, at3), "Patient/a", "Patient/c")
	expect(t, s, lu(search.PrefixEq, t0, t0.Add(time.Hour)), "Patient/a", "Patient/b", "Patient/c")
	expect(t, s, lu(search.PrefixSa, at1, at1.Add(time.Minute-1)), "Patient/b")
}

func testSearchMissing(t *testing.T, open Opener) {
	s := open(t)
	full := []search.Entry{
		str("s", "x"), tok("t", "", "x"), day("d", 2024, 1, 1), num("n", 1, 0, 0),
		qty("q", 1, "", "mg"), ref("r", "Patient", "x"), uri("u", "urn:x"),
	}
	seed(t, s,
		res{"Basic", "full", full},
		res{"Basic", "empty", nil},
		res{"Basic", "other", []search.Entry{str("s2", "x"), tok("t2", "", "x")}},
	)
	for _, p := range []struct {
		code string
		typ  search.Type
	}{
		{"s", search.TypeString}, {"t", search.TypeToken}, {"d", search.TypeDate}, {"n", search.TypeNumber},
		{"q", search.TypeQuantity}, {"r", search.TypeReference}, {"u", search.TypeURI},
	} {
		expect(t, s, q("Basic", clause(p.code, p.typ, "missing", missing(false))), "Basic/full")
		expect(t, s, q("Basic", clause(p.code, p.typ, "missing", missing(true))), "Basic/empty", "Basic/other")
	}
	// The same code indexed for another type does not count.
	seed(t, s, res{"Patient", "p", []search.Entry{str("s", "x")}})
	expect(t, s, q("Basic", clause("s", search.TypeString, "missing", missing(true))), "Basic/empty", "Basic/other")
	expect(t, s, q("Patient", clause("s", search.TypeString, "missing", missing(true))))
}

func testSearchAndOr(t *testing.T, open Opener) {
	s := open(t)
	seed(t, s,
		res{"Patient", "a", []search.Entry{str("family", "Smith"), tok("gender", "", "male"), day("birthdate", 1980, 1, 1)}},
		res{"Patient", "b", []search.Entry{str("family", "Smith"), tok("gender", "", "female"), day("birthdate", 1990, 1, 1)}},
		res{"Patient", "c", []search.Entry{str("family", "Jones"), tok("gender", "", "male"), day("birthdate", 1990, 1, 1)}},
	)
	smith := clause("family", search.TypeString, "", sv("smith"))
	male := clause("gender", search.TypeToken, "", cv("male"))
	y1990 := search.Value{Raw: "1990", Lo: time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), Hi: time.Date(1990, 12, 31, 23, 59, 59, 999999999, time.UTC)}
	born90 := clause("birthdate", search.TypeDate, "", y1990)
	expect(t, s, q("Patient", smith, male), "Patient/a")
	expect(t, s, q("Patient", smith, born90), "Patient/b")
	expect(t, s, q("Patient", male, born90), "Patient/c")
	expect(t, s, q("Patient", smith, male, born90))
	expect(t, s, q("Patient", clause("gender", search.TypeToken, "", cv("male"), cv("female")), born90), "Patient/b", "Patient/c")
	// Two clauses on the same parameter are ANDed (each may match a different entry).
	seed(t, s, res{"Patient", "d", []search.Entry{str("given", "Anna"), str("given", "Maria")}})
	expect(t, s, q("Patient", clause("given", search.TypeString, "", sv("anna")), clause("given", search.TypeString, "", sv("mar"))), "Patient/d")
	expect(t, s, q("Patient", clause("given", search.TypeString, "", sv("anna")), clause("given", search.TypeString, "", sv("x"))))
	if _, err := s.Search(ctx, q("Patient", clause("given", search.TypeString, ""))); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("clause without values: %v", err)
	}
}

func testSearchCurrentOnly(t *testing.T, open Opener) {
	s := open(t)
	put(t, s, write("Patient", "a", 1, tok("identifier", "", "old")), write("Patient", "b", 1, tok("identifier", "", "b")))
	put(t, s, write("Patient", "a", 2, tok("identifier", "", "new")))
	put(t, s, &store.Write{Type: "Patient", ID: "b", Version: 2, Method: "DELETE", Deleted: true, LastUpdated: t0.Add(time.Hour)})
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", cv("old"))))
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", cv("new"))), "Patient/a")
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", cv("b"))))
	expect(t, s, q("Patient"), "Patient/a")
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "not", cv("zzz"))), "Patient/a")
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "missing", missing(true))))
	res, err := s.Search(ctx, q("Patient"))
	if err != nil || len(res.Matches) != 1 || res.Matches[0].Version != 2 {
		t.Fatalf("current version: %+v %v", res, err)
	}
}

func testSearchSort(t *testing.T, open Opener) {
	s := open(t)
	seed(t, s,
		res{"Patient", "a", []search.Entry{str("family", "Brown"), day("birthdate", 1990, 5, 1), num("n", 3, 0, 0)}},
		res{"Patient", "b", []search.Entry{str("family", "Adams"), str("family", "Young"), day("birthdate", 1980, 1, 1), num("n", 3, 0, 0)}},
		res{"Patient", "c", []search.Entry{str("family", "Clark"), day("birthdate", 2000, 1, 1), num("n", 1, 0, 0)}},
		res{"Patient", "d", nil},
		res{"Patient", "e", []search.Entry{str("family", "Clark"), num("n", 2, 0, 0)}},
	)
	sorted := func(keys ...search.Sort) *search.Query {
		qq := q("Patient")
		qq.Sort = keys
		return qq
	}
	asc := func(code string, typ search.Type) search.Sort { return search.Sort{Param: param(code, typ)} }
	desc := func(code string, typ search.Type) search.Sort {
		return search.Sort{Param: param(code, typ), Descending: true}
	}
	// Ascending uses each resource's smallest value, descending its largest;
	// resources without a value come last; ties fall back to type and id.
	expectOrdered(t, s, sorted(asc("family", search.TypeString)), "Patient/b", "Patient/a", "Patient/c", "Patient/e", "Patient/d")
	expectOrdered(t, s, sorted(desc("family", search.TypeString)), "Patient/b", "Patient/c", "Patient/e", "Patient/a", "Patient/d")
	expectOrdered(t, s, sorted(asc("birthdate", search.TypeDate)), "Patient/b", "Patient/a", "Patient/c", "Patient/d", "Patient/e")
	expectOrdered(t, s, sorted(desc("birthdate", search.TypeDate)), "Patient/c", "Patient/a", "Patient/b", "Patient/d", "Patient/e")
	expectOrdered(t, s, sorted(desc("n", search.TypeNumber), asc("family", search.TypeString)), "Patient/b", "Patient/a", "Patient/e", "Patient/c", "Patient/d")
	expectOrdered(t, s, sorted(desc("_id", search.TypeToken)), "Patient/e", "Patient/d", "Patient/c", "Patient/b", "Patient/a")
	put(t, s, write("Patient", "a", 2, str("family", "Brown")))
	expectOrdered(t, s, sorted(desc("_lastUpdated", search.TypeDate)), "Patient/a", "Patient/b", "Patient/c", "Patient/d", "Patient/e")
	if _, err := s.Search(ctx, sorted(search.Sort{})); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("sort without param: %v", err)
	}
}

func testSearchPaging(t *testing.T, open Opener) {
	s := open(t)
	var rs []res
	for i := 0; i < 25; i++ {
		rs = append(rs, res{"Patient", fmt.Sprintf("p%02d", i), []search.Entry{num("n", float64(i%4), 0, 0), tok("tag", "", "x")}})
	}
	seed(t, s, rs...)
	for _, sortKeys := range [][]search.Sort{nil, {{Param: param("n", search.TypeNumber)}}, {{Param: param("n", search.TypeNumber), Descending: true}}} {
		var all []string
		for off := 0; off < 30; off += 7 {
			qq := q("Patient", clause("tag", search.TypeToken, "", cv("x")))
			qq.Sort, qq.Count, qq.Offset = sortKeys, 7, off
			res, err := s.Search(ctx, qq)
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != 25 {
				t.Fatalf("total %d", res.Total)
			}
			if want := min(7, max(0, 25-off)); len(res.Matches) != want {
				t.Fatalf("offset %d: %d matches, want %d", off, len(res.Matches), want)
			}
			for _, m := range res.Matches {
				all = append(all, m.ID)
			}
		}
		// Pages are disjoint and cover everything.
		dedup := slices.Clone(all)
		slices.Sort(dedup)
		dedup = slices.Compact(dedup)
		if len(all) != 25 || len(dedup) != 25 {
			t.Fatalf("paging returned %d ids, %d distinct", len(all), len(dedup))
		}
	}
	// Total none, count-only, default count.
	qq := q("Patient")
	qq.Total = search.TotalNone
	res, err := s.Search(ctx, qq)
	if err != nil || res.Total != -1 || len(res.Matches) != 25 {
		t.Fatalf("total none: %d %d %v", res.Total, len(res.Matches), err)
	}
	qq = q("Patient")
	qq.Count = -1
	res, err = s.Search(ctx, qq)
	if err != nil || res.Total != 25 || len(res.Matches) != 0 {
		t.Fatalf("count only: %d %d %v", res.Total, len(res.Matches), err)
	}
	qq = q("Patient")
	qq.Offset = 100
	res, err = s.Search(ctx, qq)
	if err != nil || res.Total != 25 || len(res.Matches) != 0 {
		t.Fatalf("past the end: %d %d %v", res.Total, len(res.Matches), err)
	}
}

func testSearchSystem(t *testing.T, open Opener) {
	s := open(t)
	seed(t, s,
		res{"Patient", "p", []search.Entry{tok("_tag", "urn:t", "vip")}},
		res{"Observation", "o", []search.Entry{tok("_tag", "urn:t", "vip")}},
		res{"Encounter", "e", nil},
	)
	expect(t, s, q(""), "Encounter/e", "Observation/o", "Patient/p")
	expect(t, s, q("", clause("_tag", search.TypeToken, "", tv("urn:t", "vip"))), "Observation/o", "Patient/p")
	qq := q("", clause("_tag", search.TypeToken, "", tv("urn:t", "vip")))
	qq.Types = []string{"Patient", "Encounter"}
	expect(t, s, qq, "Patient/p")
	qq = q("")
	qq.Types = []string{"Encounter", "Observation"}
	expect(t, s, qq, "Encounter/e", "Observation/o")
	expect(t, s, q("", clause("_id", search.TypeToken, "", cv("o"))), "Observation/o")
	expectOrdered(t, s, q(""), "Encounter/e", "Observation/o", "Patient/p")
}

func testSearchInclude(t *testing.T, open Opener) {
	s := open(t)
	seed(t, s,
		res{"Patient", "p1", []search.Entry{ref("general-practitioner", "Practitioner", "dr1"), ref("organization", "Organization", "org")}},
		res{"Patient", "p2", []search.Entry{ref("general-practitioner", "Practitioner", "dr1")}},
		res{"Practitioner", "dr1", nil},
		res{"Organization", "org", nil},
		res{"Observation", "o1", []search.Entry{ref("subject", "Patient", "p1"), ref("performer", "Practitioner", "dr1")}},
		res{"Observation", "o2", []search.Entry{ref("subject", "Patient", "p1")}},
		res{"Observation", "o3", []search.Entry{ref("subject", "Patient", "p2")}},
		res{"Observation", "o4", []search.Entry{ref("subject", "Group", "p1")}},
		res{"Encounter", "e1", []search.Entry{ref("subject", "Patient", "p1")}},
		res{"Observation", "gone", []search.Entry{ref("subject", "Patient", "p1")}},
		res{"Observation", "dangling", []search.Entry{ref("subject", "Patient", "nope")}},
	)
	put(t, s, &store.Write{Type: "Observation", ID: "gone", Version: 2, Method: "DELETE", Deleted: true, LastUpdated: t0})
	included := func(qq *search.Query) []string {
		t.Helper()
		res, err := s.Search(ctx, qq)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range res.Included {
			out = append(out, r.Type+"/"+r.ID)
		}
		slices.Sort(out)
		return out
	}
	check := func(name string, qq *search.Query, want ...string) {
		t.Helper()
		got := included(qq)
		if !slices.Equal(got, want) {
			t.Errorf("%s: included %v, want %v", name, got, want)
		}
	}
	obs := func(inc ...search.Include) *search.Query {
		qq := q("Observation", clause("_id", search.TypeToken, "", cv("o1"), cv("o2"), cv("o3"), cv("o4")))
		qq.Include = inc
		return qq
	}
	check("subject", obs(search.Include{Source: "Observation", Param: "subject"}), "Patient/p1", "Patient/p2")
	check("subject:Patient", obs(search.Include{Source: "Observation", Param: "subject", Target: "Patient"}), "Patient/p1", "Patient/p2")
	check("subject:Group", obs(search.Include{Source: "Observation", Param: "subject", Target: "Group"}))
	check("*", obs(search.Include{Source: "Observation", Param: "*"}), "Patient/p1", "Patient/p2", "Practitioner/dr1")
	check("other source", obs(search.Include{Source: "Encounter", Param: "subject"}))
	check("two", obs(search.Include{Source: "Observation", Param: "subject"}, search.Include{Source: "Observation", Param: "performer"}),
		"Patient/p1", "Patient/p2", "Practitioner/dr1")
	pat := func(inc, rev []search.Include) *search.Query {
		qq := q("Patient", clause("_id", search.TypeToken, "", cv("p1")))
		qq.Include, qq.RevInclude = inc, rev
		return qq
	}
	check("revinclude", pat(nil, []search.Include{{Source: "Observation", Param: "subject"}}), "Observation/o1", "Observation/o2")
	check("revinclude *", pat(nil, []search.Include{{Source: "*", Param: "*"}}), "Encounter/e1", "Observation/o1", "Observation/o2")
	check("revinclude target", pat(nil, []search.Include{{Source: "Observation", Param: "subject", Target: "Group"}}))
	check("both, once each", pat(
		[]search.Include{{Source: "Patient", Param: "general-practitioner"}, {Source: "Patient", Param: "*"}},
		[]search.Include{{Source: "Observation", Param: "subject"}, {Source: "Observation", Param: "*"}}),
		"Observation/o1", "Observation/o2", "Organization/org", "Practitioner/dr1")
	// A match is never repeated as an include.
	qq := q("Patient")
	qq.RevInclude = []search.Include{{Source: "Patient", Param: "*"}}
	qq.Include = []search.Include{{Source: "Patient", Param: "*"}}
	check("matches excluded", qq, "Organization/org", "Practitioner/dr1")
}

func testSearchUnsupported(t *testing.T, open Opener) {
	s := open(t)
	for _, c := range []search.Clause{
		clause("combo", search.TypeComposite, "", cv("x")),
		clause("_has", search.TypeSpecial, "", cv("x")),
		clause("code", search.TypeToken, "in", cv("http://vs")),
		clause("name", search.TypeString, "below", cv("x")),
		clause("date", search.TypeDate, "not", cv("x")),
	} {
		if _, err := s.Search(ctx, q("Patient", c)); !errors.Is(err, store.ErrUnsupported) {
			t.Errorf("%s:%s: %v, want ErrUnsupported", c.Param.Code, c.Modifier, err)
		}
	}
}
