package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"phix/fhir/search"
	"phix/store"
	"phix/store/sqlite"
)

// FuzzSearchValues feeds arbitrary text through every value position of the
// SQL builder: the search must never fail with a database error (only
// ErrInvalid/ErrUnsupported are allowed), never match a resource whose value
// differs, and always find the resource holding exactly that value.
func FuzzSearchValues(f *testing.F) {
	for _, s := range []string{"", "a", "'; DROP TABLE resources; --", "%", "_", `\`, "王", "$1", "?1", "\U0010FFFF", "a\x00b", "\xff"} {
		f.Add(s)
	}
	s, err := sqlite.Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	n := 0
	f.Fuzz(func(t *testing.T, v string) {
		n++
		id := fmt.Sprintf("f%d", n)
		w := &store.Write{Type: "Basic", ID: id, Version: 1, Method: "POST", Body: []byte("{}"), LastUpdated: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
			Index: []search.Entry{
				{Param: "s", Type: search.TypeString, Str: v, Exact: v},
				{Param: "t", Type: search.TypeToken, System: v, Code: v, Str: v},
				{Param: "r", Type: search.TypeReference, RefType: "Basic", RefID: v},
				{Param: "u", Type: search.TypeURI, URL: v},
			}}
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, w)
			return err
		})
		valid := utf8.ValidString(v) && !strings.ContainsRune(v, 0)
		if !valid {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("invalid text: %v", err)
			}
		} else if err != nil {
			t.Fatalf("put: %v", err)
		}
		clauses := []search.Clause{
			{Param: &search.Param{Code: "s", Type: search.TypeString}, Modifier: "exact", Values: []search.Value{{Raw: v, Str: v}}},
			{Param: &search.Param{Code: "s", Type: search.TypeString}, Values: []search.Value{{Raw: v, Str: v}}},
			{Param: &search.Param{Code: "s", Type: search.TypeString}, Modifier: "contains", Values: []search.Value{{Raw: v, Str: v}}},
			{Param: &search.Param{Code: "t", Type: search.TypeToken}, Values: []search.Value{{Raw: v, System: v, HasSystem: true, Code: v}}},
			{Param: &search.Param{Code: "t", Type: search.TypeToken}, Modifier: "text", Values: []search.Value{{Raw: v, Str: v}}},
			{Param: &search.Param{Code: "r", Type: search.TypeReference}, Values: []search.Value{{Raw: v, RefID: v}}},
			{Param: &search.Param{Code: "u", Type: search.TypeURI}, Values: []search.Value{{Raw: v, URL: v}}},
			{Param: &search.Param{Code: "u", Type: search.TypeURI}, Modifier: "below", Values: []search.Value{{Raw: v, URL: v}}},
			{Param: &search.Param{Code: "u", Type: search.TypeURI}, Modifier: "above", Values: []search.Value{{Raw: v, URL: v}}},
			{Param: &search.Param{Code: "_id", Type: search.TypeToken}, Values: []search.Value{{Raw: v, Code: v}}},
		}
		for i, c := range clauses {
			res, err := s.Search(ctx, &search.Query{Type: "Basic", Clauses: []search.Clause{c}, Count: 1000})
			if err != nil {
				if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrUnsupported) {
					continue
				}
				t.Fatalf("clause %d: %v", i, err)
			}
			if !valid || i == 9 {
				continue
			}
			found := false
			for _, m := range res.Matches {
				found = found || m.ID == id
			}
			if !found {
				t.Fatalf("clause %d (%s:%s) did not find its own value", i, c.Param.Code, c.Modifier)
			}
		}
	})
}
