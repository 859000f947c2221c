package storetest

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
)

var ctx = context.Background()

func testCRUD(t *testing.T, open Opener) {
	s := open(t)
	if _, err := s.Read(ctx, "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read missing: %v", err)
	}
	recs := put(t, s, write("Patient", "p1", 1, str("name", "Alice")))
	sameRecord(t, recs[0], "Patient", "p1", 1)
	if recs[0].Method != "PUT" {
		t.Errorf("method %q", recs[0].Method)
	}
	r, err := s.Read(ctx, "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, r, "Patient", "p1", 1)
	w := write("Patient", "p1", 2, str("name", "Bob"))
	w.Method = "PATCH"
	put(t, s, w)
	r, err = s.Read(ctx, "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, r, "Patient", "p1", 2)
	if r.Method != "PATCH" {
		t.Errorf("method %q", r.Method)
	}
	for v := int64(1); v <= 2; v++ {
		r, err := s.VRead(ctx, "Patient", "p1", v)
		if err != nil {
			t.Fatal(err)
		}
		sameRecord(t, r, "Patient", "p1", v)
	}
	for _, v := range []int64{0, 3, -1} {
		if _, err := s.VRead(ctx, "Patient", "p1", v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("vread %d: %v", v, err)
		}
	}
	if _, err := s.VRead(ctx, "Patient", "nope", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("vread missing: %v", err)
	}
	// Same id, other type: a different resource.
	if _, err := s.Read(ctx, "Observation", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("read other type: %v", err)
	}
	// Bodies are kept byte for byte, including bytes JSON would not produce.
	raw := []byte("{\"x\": \"\u4e2d\u6587\", \"y\":\"\\u0000\"}\n\xff")
	w = write("Binary", "b1", 1)
	w.Body = raw
	put(t, s, w)
	r, err = s.Read(ctx, "Binary", "b1")
	if err != nil || string(r.Body) != string(raw) {
		t.Fatalf("binary body: %v %q", err, r.Body)
	}
	// The index follows the current version only.
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("bob"))), "Patient/p1")
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("alice"))))
}

func testDelete(t *testing.T, open Opener) {
	s := open(t)
	put(t, s, write("Patient", "p1", 1, str("name", "Alice"), tok("identifier", "urn:mrn", "1")))
	del := &store.Write{Type: "Patient", ID: "p1", Version: 2, Method: "DELETE", Deleted: true, LastUpdated: t0.Add(2 * time.Minute),
		Index: []search.Entry{str("name", "ignored")}}
	recs := put(t, s, del)
	if !recs[0].Deleted || len(recs[0].Body) != 0 || recs[0].Version != 2 {
		t.Fatalf("deletion record %+v", recs[0])
	}
	r, err := s.Read(ctx, "Patient", "p1")
	mustErr(t, err, store.ErrDeleted)
	if r == nil || !r.Deleted || r.Version != 2 || r.Method != "DELETE" || len(r.Body) != 0 {
		t.Fatalf("read deleted: %+v", r)
	}
	if _, err := s.VRead(ctx, "Patient", "p1", 2); !errors.Is(err, store.ErrDeleted) {
		t.Errorf("vread deletion: %v", err)
	}
	if r, err := s.VRead(ctx, "Patient", "p1", 1); err != nil || r.Deleted {
		t.Errorf("vread before deletion: %v", err)
	}
	expect(t, s, q("Patient"))
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("ali"))))
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("ignored"))))
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", cv("1"))))
	// Recreate after delete: version 3, searchable again.
	put(t, s, write("Patient", "p1", 3, str("name", "Carol")))
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("car"))), "Patient/p1")
	_, n, err := s.History(ctx, store.HistoryOptions{Type: "Patient", ID: "p1"})
	if err != nil || n != 3 {
		t.Fatalf("history after recreate: %d %v", n, err)
	}
}

func testPreconditions(t *testing.T, open Opener) {
	s := open(t)
	put(t, s, write("Patient", "p1", 1))
	// Version must be current+1.
	for _, v := range []int64{1, 3, 10} {
		mustErr(t, putErr(s, write("Patient", "p1", v)), store.ErrConflict)
	}
	mustErr(t, putErr(s, write("Patient", "new", 2)), store.ErrConflict)
	// If-Match.
	w := write("Patient", "p1", 2)
	w.IfVersion = 2
	mustErr(t, putErr(s, w), store.ErrVersionConflict)
	w.IfVersion = 1
	if err := putErr(s, w); err != nil {
		t.Fatal(err)
	}
	w = write("Patient", "absent", 1)
	w.IfVersion = 1
	mustErr(t, putErr(s, w), store.ErrVersionConflict)
	// Create with a client id.
	w = write("Patient", "p1", 3)
	w.MustNotExist = true
	mustErr(t, putErr(s, w), store.ErrVersionConflict)
	w = write("Patient", "p2", 1)
	w.MustNotExist = true
	if err := putErr(s, w); err != nil {
		t.Fatal(err)
	}
	// A deleted resource still has versions.
	put(t, s, &store.Write{Type: "Patient", ID: "p2", Version: 2, Method: "DELETE", Deleted: true, LastUpdated: t0})
	w = write("Patient", "p2", 3)
	w.MustNotExist = true
	mustErr(t, putErr(s, w), store.ErrVersionConflict)
	// Nothing was written by the failed attempts.
	r, err := s.Read(ctx, "Patient", "p1")
	if err != nil || r.Version != 2 {
		t.Fatalf("p1 after conflicts: %v %v", r, err)
	}
	if _, err := s.Read(ctx, "Patient", "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed create left a record: %v", err)
	}
}

func testInvalid(t *testing.T, open Opener) {
	s := open(t)
	bad := []struct {
		name string
		mod  func(w *store.Write)
	}{
		{"no type", func(w *store.Write) { w.Type = "" }},
		{"no id", func(w *store.Write) { w.ID = "" }},
		{"version 0", func(w *store.Write) { w.Version = 0 }},
		{"no method", func(w *store.Write) { w.Method = "" }},
		{"no time", func(w *store.Write) { w.LastUpdated = time.Time{} }},
		{"no body", func(w *store.Write) { w.Body = nil }},
		{"bad utf8 id", func(w *store.Write) { w.ID = "a\xffb" }},
		{"NUL id", func(w *store.Write) { w.ID = "a\x00b" }},
		{"entry type", func(w *store.Write) { w.Index = []search.Entry{{Param: "x", Type: "composite"}} }},
		{"entry param", func(w *store.Write) { w.Index = []search.Entry{{Type: search.TypeString}} }},
		{"NaN", func(w *store.Write) { w.Index = []search.Entry{num("n", math.NaN(), 0, 0)} }},
		{"Inf", func(w *store.Write) { w.Index = []search.Entry{num("n", math.Inf(1), 0, 0)} }},
		{"NUL text", func(w *store.Write) { w.Index = []search.Entry{str("name", "a\x00")} }},
		{"date order", func(w *store.Write) { w.Index = []search.Entry{date("d", t0, t0.Add(-time.Hour))} }},
	}
	for _, b := range bad {
		w := write("Patient", "p1", 1, str("name", "ok"))
		b.mod(w)
		if err := putErr(s, w); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", b.name, err)
		}
	}
	if err := putErr(s, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("nil write: %v", err)
	}
	expect(t, s, q("Patient"))
	if _, err := s.Search(ctx, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("nil query: %v", err)
	}
	if _, err := s.Search(ctx, &search.Query{Type: "Patient", Offset: -1}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("negative offset: %v", err)
	}
	if _, err := s.Search(ctx, &search.Query{Type: "Patient", Clauses: []search.Clause{{Values: []search.Value{cv("x")}}}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("clause without param: %v", err)
	}
	if _, _, err := s.History(ctx, store.HistoryOptions{ID: "x"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("history id without type: %v", err)
	}
}

func testTxAtomic(t *testing.T, open Opener) {
	s := open(t)
	put(t, s, write("Patient", "keep", 1, str("name", "Keep")))
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx store.Tx) error {
		for _, w := range []*store.Write{
			write("Patient", "a", 1, str("name", "Rolled"), tok("identifier", "s", "1")),
			write("Patient", "keep", 2, str("name", "Changed")),
			write("Observation", "o", 1, ref("subject", "Patient", "a")),
		} {
			if _, err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("tx error %v", err)
	}
	// A failed Put inside the transaction, returned by fn, also rolls back.
	err = s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.Put(ctx, write("Patient", "b", 1, str("name", "Rolled"))); err != nil {
			return err
		}
		_, err := tx.Put(ctx, write("Patient", "keep", 5))
		return err
	})
	mustErr(t, err, store.ErrConflict)
	for _, id := range []string{"a", "b"} {
		if _, err := s.Read(ctx, "Patient", id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s survived rollback: %v", id, err)
		}
	}
	r, err := s.Read(ctx, "Patient", "keep")
	if err != nil || r.Version != 1 {
		t.Fatalf("keep after rollback: %v %v", r, err)
	}
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("rolled"))))
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("changed"))))
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("keep"))), "Patient/keep")
	expect(t, s, q("Observation"))
	_, n, err := s.History(ctx, store.HistoryOptions{})
	if err != nil || n != 1 {
		t.Fatalf("history after rollbacks: %d %v", n, err)
	}
	// The ids are free for use again.
	put(t, s, write("Patient", "a", 1), write("Patient", "b", 1))
}

func testTxReadsOwnWrites(t *testing.T, open Opener) {
	s := open(t)
	err := s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.Put(ctx, write("Patient", "p1", 1, tok("identifier", "urn:mrn", "42"))); err != nil {
			return err
		}
		if _, err := tx.Put(ctx, write("Patient", "p1", 2, tok("identifier", "urn:mrn", "43"))); err != nil {
			return err
		}
		r, err := tx.Read(ctx, "Patient", "p1")
		if err != nil || r.Version != 2 {
			t.Errorf("read in tx: %v %v", r, err)
		}
		if _, err := tx.VRead(ctx, "Patient", "p1", 1); err != nil {
			t.Errorf("vread in tx: %v", err)
		}
		expect(t, tx, q("Patient", clause("identifier", search.TypeToken, "", tv("urn:mrn", "43"))), "Patient/p1")
		expect(t, tx, q("Patient", clause("identifier", search.TypeToken, "", tv("urn:mrn", "42"))))
		_, n, err := tx.History(ctx, store.HistoryOptions{Type: "Patient", ID: "p1"})
		if err != nil || n != 2 {
			t.Errorf("history in tx: %d %v", n, err)
		}
		if _, err := tx.Put(ctx, write("Patient", "p1", 3, tok("identifier", "urn:mrn", "44"))); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", cv("44"))), "Patient/p1")
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", cv("43"))))
}

func testPersistence(t *testing.T, open Opener) {
	s := open(t)
	put(t, s, write("Patient", "p1", 1, str("name", "Persist")), write("Patient", "p1", 2, str("name", "Persisted")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t)
	r, err := s.Read(ctx, "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, r, "Patient", "p1", 2)
	expect(t, s, q("Patient", clause("name", search.TypeString, "", sv("persisted"))), "Patient/p1")
	put(t, s, write("Patient", "p1", 3))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t)
	_, n, err := s.History(ctx, store.HistoryOptions{Type: "Patient", ID: "p1"})
	if err != nil || n != 3 {
		t.Fatalf("history after reopen: %d %v", n, err)
	}
}
