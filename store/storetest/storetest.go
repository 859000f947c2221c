// Package storetest is the contract suite every store.Store implementation
// passes. Backends call Run from their tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// Opener opens a store for a test. Each test t gets its own empty database;
// calling the opener again with the same t after closing the previous store
// must reopen that same database (the suite uses it to check persistence).
// The opener registers its own cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the whole contract suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"CRUD", testCRUD},
		{"Delete", testDelete},
		{"Preconditions", testPreconditions},
		{"InvalidInput", testInvalid},
		{"TxAtomic", testTxAtomic},
		{"TxReadsOwnWrites", testTxReadsOwnWrites},
		{"ConcurrentSameResource", testConcurrentSame},
		{"ConcurrentDifferentResources", testConcurrentDifferent},
		{"ConcurrentConditionalCreate", testConditionalCreate},
		{"SearchString", testSearchString},
		{"SearchToken", testSearchToken},
		{"SearchDate", testSearchDate},
		{"SearchNumber", testSearchNumber},
		{"SearchQuantity", testSearchQuantity},
		{"SearchReference", testSearchReference},
		{"SearchURI", testSearchURI},
		{"SearchIDAndLastUpdated", testSearchIDLastUpdated},
		{"SearchMissing", testSearchMissing},
		{"SearchAndOr", testSearchAndOr},
		{"SearchCurrentOnly", testSearchCurrentOnly},
		{"SearchSort", testSearchSort},
		{"SearchPaging", testSearchPaging},
		{"SearchSystemLevel", testSearchSystem},
		{"SearchInclude", testSearchInclude},
		{"SearchIncludeIterate", testSearchIncludeIterate},
		{"SearchChain", testSearchChain},
		{"SearchComposite", testSearchComposite},
		{"SearchFullText", testSearchFullText},
		{"SearchEndToEnd", testSearchEndToEnd},
		{"SearchUnsupported", testSearchUnsupported},
		{"History", testHistory},
		{"HistoryAt", testHistoryAt},
		{"Metacharacters", testMetacharacters},
		{"Persistence", testPersistence},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// t0 is the base time of the suite's records.
var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

// res is a resource to seed: its type, id and index entries.
type res struct {
	typ, id string
	idx     []search.Entry
}

func body(typ, id string, version int64) []byte {
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}}`, typ, id, version)
}

// write is a Write for version v of typ/id stamped at t0 + v minutes.
func write(typ, id string, v int64, idx ...search.Entry) *store.Write {
	return &store.Write{
		Type: typ, ID: id, Version: v, Method: "PUT",
		LastUpdated: t0.Add(time.Duration(v) * time.Minute),
		Body:        body(typ, id, v), Index: idx,
	}
}

// put stores writes in one transaction.
func put(t *testing.T, s store.Store, ws ...*store.Write) []*store.Record {
	t.Helper()
	var out []*store.Record
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		out = out[:0]
		for _, w := range ws {
			r, err := tx.Put(context.Background(), w)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	return out
}

// putErr stores one write and returns the error.
func putErr(s store.Store, w *store.Write) error {
	return s.Tx(context.Background(), func(tx store.Tx) error {
		_, err := tx.Put(context.Background(), w)
		return err
	})
}

// seed creates version 1 of every resource, in one transaction.
func seed(t *testing.T, s store.Store, rs ...res) {
	t.Helper()
	ws := make([]*store.Write, len(rs))
	for i, r := range rs {
		ws[i] = write(r.typ, r.id, 1, r.idx...)
	}
	put(t, s, ws...)
}

// Entry builders.

func str(p, s string) search.Entry {
	return search.Entry{Param: p, Type: search.TypeString, Str: strings.ToLower(s), Exact: s}
}

func tok(p, system, code string) search.Entry {
	return search.Entry{Param: p, Type: search.TypeToken, System: system, Code: code}
}

func tokText(p, system, code, text string) search.Entry {
	return search.Entry{Param: p, Type: search.TypeToken, System: system, Code: code, Str: strings.ToLower(text)}
}

func date(p string, lo, hi time.Time) search.Entry {
	return search.Entry{Param: p, Type: search.TypeDate, Lo: lo, Hi: hi}
}

// day is the range of one calendar day.
func day(p string, y int, m time.Month, d int) search.Entry {
	lo := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return date(p, lo, lo.AddDate(0, 0, 1).Add(-time.Nanosecond))
}

func num(p string, n, lo, hi float64) search.Entry {
	return search.Entry{Param: p, Type: search.TypeNumber, Num: n, NumLo: lo, NumHi: hi}
}

func qty(p string, n float64, system, code string) search.Entry {
	return search.Entry{Param: p, Type: search.TypeQuantity, Num: n, NumLo: n, NumHi: n, System: system, Code: code}
}

func ref(p, typ, id string) search.Entry {
	return search.Entry{Param: p, Type: search.TypeReference, RefType: typ, RefID: id}
}

func uri(p, u string) search.Entry {
	return search.Entry{Param: p, Type: search.TypeURI, URL: u}
}

// Query builders.

func param(code string, typ search.Type) *search.Param {
	return &search.Param{Code: code, Type: typ}
}

func clause(code string, typ search.Type, mod string, vals ...search.Value) search.Clause {
	return search.Clause{Param: param(code, typ), Modifier: mod, Values: vals}
}

func q(typ string, cs ...search.Clause) *search.Query {
	return &search.Query{Type: typ, Clauses: cs, Total: search.TotalAccurate}
}

func sv(s string) search.Value { return search.Value{Raw: s, Str: strings.ToLower(s)} }

func tv(system, code string) search.Value {
	return search.Value{Raw: system + "|" + code, System: system, HasSystem: true, Code: code}
}

func cv(code string) search.Value { return search.Value{Raw: code, Code: code} }

func missing(b bool) search.Value { return search.Value{Raw: fmt.Sprint(b), Missing: b} }

// ids runs q and returns "Type/id" of the matches in order; it also checks
// that the total agrees when the page holds everything.
func ids(t *testing.T, r store.Reader, qq *search.Query) []string {
	t.Helper()
	res, err := r.Search(context.Background(), qq)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	out := make([]string, 0, len(res.Matches))
	for _, m := range res.Matches {
		if m.Deleted || len(m.Body) == 0 {
			t.Errorf("match %s/%s is deleted or has no body", m.Type, m.ID)
		}
		out = append(out, m.Type+"/"+m.ID)
	}
	if qq.Total != search.TotalNone && qq.Offset == 0 && len(out) < max(qq.Count, store.DefaultCount) && res.Total != len(out) {
		t.Errorf("total %d, matches %d", res.Total, len(out))
	}
	return out
}

// expect checks that q matches exactly want, in any order.
func expect(t *testing.T, r store.Reader, qq *search.Query, want ...string) {
	t.Helper()
	got := ids(t, r, qq)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("%s: got %v, want %v", describe(qq), got, w)
	}
}

// expectOrdered checks that q matches exactly want, in that order.
func expectOrdered(t *testing.T, r store.Reader, qq *search.Query, want ...string) {
	t.Helper()
	got := ids(t, r, qq)
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", describe(qq), got, want)
	}
}

func describe(qq *search.Query) string {
	var parts []string
	for _, c := range qq.Clauses {
		var vs []string
		for _, v := range c.Values {
			vs = append(vs, string(v.Prefix)+v.Raw)
		}
		mod := ""
		if c.Modifier != "" {
			mod = ":" + c.Modifier
		}
		parts = append(parts, c.Param.Code+mod+"="+strings.Join(vs, ","))
	}
	for _, s := range qq.Sort {
		d := ""
		if s.Descending {
			d = "-"
		}
		parts = append(parts, "_sort="+d+s.Param.Code)
	}
	return qq.Type + "?" + strings.Join(parts, "&")
}

func sameRecord(t *testing.T, got *store.Record, typ, id string, v int64) {
	t.Helper()
	if got == nil {
		t.Fatalf("nil record for %s/%s", typ, id)
	}
	if got.Type != typ || got.ID != id || got.Version != v {
		t.Fatalf("record %s/%s v%d, want %s/%s v%d", got.Type, got.ID, got.Version, typ, id, v)
	}
	if !got.LastUpdated.Equal(t0.Add(time.Duration(v) * time.Minute)) {
		t.Errorf("lastUpdated %v", got.LastUpdated)
	}
	if !got.Deleted && !bytes.Equal(got.Body, body(typ, id, v)) {
		t.Errorf("body %q", got.Body)
	}
}

func mustErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}
