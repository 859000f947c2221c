package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// hostile are values that break string-built SQL, LIKE patterns or naive
// encodings. Every one must be stored and found exactly, and match nothing else.
var hostile = []string{
	"'; DROP TABLE resources; --",
	`"); DELETE FROM resource_versions; --`,
	"100%",
	"a_b",
	`back\slash`,
	`\%_'"`,
	"王小明",
	"Zoë Ñandú",
	"emoji 🩺",
	"$1 ?1 :name @p",
}

func testMetacharacters(t *testing.T, open Opener) {
	s := open(t)
	var rs []res
	for i, v := range hostile {
		rs = append(rs, res{"Patient", v, []search.Entry{
			str("name", v), tok("identifier", v, v), tokText("code", "", "c", v),
			ref("subject", "Patient", v), uri("url", v),
			{Param: "ident", Type: search.TypeReference, System: v, Code: v},
			qty("q", float64(i), v, v),
		}})
	}
	// A decoy whose values are what a broken LIKE or escape would match.
	rs = append(rs, res{"Patient", "decoy", []search.Entry{
		str("name", "100x"), str("name", "aXb"), str("name", "back"), tok("identifier", "x", "a"),
		uri("url", "a"), ref("subject", "Patient", "a"),
	}})
	seed(t, s, rs...)
	for i, v := range hostile {
		want := "Patient/" + v
		r, err := s.Read(ctx, "Patient", v)
		if err != nil || r.ID != v {
			t.Fatalf("read %q: %v", v, err)
		}
		if _, err := s.VRead(ctx, "Patient", v, 1); err != nil {
			t.Fatalf("vread %q: %v", v, err)
		}
		if _, n, err := s.History(ctx, store.HistoryOptions{Type: "Patient", ID: v}); err != nil || n != 1 {
			t.Fatalf("history %q: %d %v", v, n, err)
		}
		expect(t, s, q("Patient", clause("_id", search.TypeToken, "", cv(v))), want)
		expect(t, s, q("Patient", clause("name", search.TypeString, "", sv(v))), want)
		expect(t, s, q("Patient", clause("name", search.TypeString, "exact", search.Value{Raw: v, Str: v})), want)
		expect(t, s, q("Patient", clause("name", search.TypeString, "contains", sv(v))), want)
		expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", tv(v, v))), want)
		expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", cv(v))), want)
		expect(t, s, q("Patient", clause("code", search.TypeToken, "text", sv(v))), want)
		expect(t, s, q("Patient", clause("subject", search.TypeReference, "", search.Value{Raw: v, RefType: "Patient", RefID: v})), want)
		expect(t, s, q("Patient", clause("url", search.TypeURI, "", search.Value{Raw: v, URL: v})), want)
		expect(t, s, q("Patient", clause("url", search.TypeURI, "below", search.Value{Raw: v, URL: v})), want)
		expect(t, s, q("Patient", clause("ident", search.TypeReference, "identifier", tv(v, v))), want)
		qv := search.Value{Raw: v, Num: float64(i), System: v, HasSystem: true, Code: v}
		expect(t, s, q("Patient", clause("q", search.TypeQuantity, "", qv)), want)
		qq := q("Patient", clause("_id", search.TypeToken, "", cv(v)))
		qq.RevInclude = []search.Include{{Source: "Patient", Param: "subject"}}
		qq.Include = []search.Include{{Source: "Patient", Param: "subject"}}
		res, err := s.Search(ctx, qq)
		if err != nil || len(res.Included) != 0 {
			t.Fatalf("self include %q: %v", v, err)
		}
	}
	// Hostile resource types and parameter codes are plain values too.
	for _, v := range hostile[:6] {
		put(t, s, write(v, "x", 1, str(v, v)))
		expect(t, s, q(v, clause(v, search.TypeString, "", sv(v))), v+"/x")
	}
	// Errors never quote values: ids, types and index values may be PHI.
	for _, v := range hostile {
		for _, w := range []*store.Write{write("Patient", v, 5), write("Patient", v, 1)} {
			err := putErr(s, w)
			if err == nil {
				t.Fatalf("conflicting write accepted")
			}
			if msg := err.Error(); strings.Contains(msg, v) {
				t.Errorf("error quotes a value: %s", msg)
			}
		}
		w := write("Patient", v+"-n", 1, date("d", t0, t0.Add(-time.Hour)), str("name", v+"\x00"))
		if err := putErr(s, w); err == nil || strings.Contains(err.Error(), v) {
			t.Errorf("invalid entry error: %v", err)
		}
	}
	// The schema is intact.
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("100"))), "Patient/100%", "Patient/decoy")
	if _, err := s.Read(ctx, "Patient", "decoy"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, "Patient", "%"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("wildcard id: %v", err)
	}
}
