package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"phix/store"
)

func versions(recs []*store.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%s/%s/%d", r.Type, r.ID, r.Version)
	}
	return out
}

func history(t *testing.T, r store.Reader, o store.HistoryOptions, wantTotal int, want ...string) {
	t.Helper()
	recs, n, err := r.History(ctx, o)
	if err != nil {
		t.Fatalf("history %+v: %v", o, err)
	}
	if got := versions(recs); n != wantTotal || !slices.Equal(got, want) {
		t.Errorf("history %+v: %v (total %d), want %v (total %d)", o, got, n, want, wantTotal)
	}
}

// stamped is a write at an explicit minute offset from t0.
func stamped(typ, id string, v int64, minute int) *store.Write {
	w := write(typ, id, v)
	w.LastUpdated = t0.Add(time.Duration(minute) * time.Minute)
	return w
}

func testHistory(t *testing.T, open Opener) {
	s := open(t)
	put(t, s, stamped("Patient", "a", 1, 1))
	put(t, s, stamped("Observation", "o", 1, 2))
	put(t, s, stamped("Patient", "a", 2, 3))
	put(t, s, stamped("Patient", "b", 1, 4))
	put(t, s, &store.Write{Type: "Patient", ID: "a", Version: 3, Method: "DELETE", Deleted: true, LastUpdated: t0.Add(5 * time.Minute)})

	history(t, s, store.HistoryOptions{Type: "Patient", ID: "a"}, 3, "Patient/a/3", "Patient/a/2", "Patient/a/1")
	history(t, s, store.HistoryOptions{Type: "Patient"}, 4, "Patient/a/3", "Patient/b/1", "Patient/a/2", "Patient/a/1")
	history(t, s, store.HistoryOptions{}, 5, "Patient/a/3", "Patient/b/1", "Patient/a/2", "Observation/o/1", "Patient/a/1")
	history(t, s, store.HistoryOptions{Since: t0.Add(3 * time.Minute)}, 3, "Patient/a/3", "Patient/b/1", "Patient/a/2")
	history(t, s, store.HistoryOptions{Type: "Patient", ID: "a", Since: t0.Add(2 * time.Minute)}, 2, "Patient/a/3", "Patient/a/2")
	history(t, s, store.HistoryOptions{Count: 2}, 5, "Patient/a/3", "Patient/b/1")
	history(t, s, store.HistoryOptions{Count: 2, Offset: 2}, 5, "Patient/a/2", "Observation/o/1")
	history(t, s, store.HistoryOptions{Count: 2, Offset: 4}, 5, "Patient/a/1")
	history(t, s, store.HistoryOptions{Count: 2, Offset: 9}, 5)
	history(t, s, store.HistoryOptions{Count: -1}, 5)
	history(t, s, store.HistoryOptions{Type: "Encounter"}, 0)

	recs, _, err := s.History(ctx, store.HistoryOptions{Type: "Patient", ID: "a", Count: 1})
	if err != nil || len(recs) != 1 || !recs[0].Deleted || recs[0].Method != "DELETE" || len(recs[0].Body) != 0 {
		t.Fatalf("deletion in history: %+v %v", recs, err)
	}
	recs, _, err = s.History(ctx, store.HistoryOptions{Type: "Patient", ID: "a", Offset: 2})
	if err != nil || len(recs) != 1 {
		t.Fatalf("history page: %v", err)
	}
	sameRecord(t, recs[0], "Patient", "a", 1)
	if _, _, err := s.History(ctx, store.HistoryOptions{Type: "Patient", ID: "zz"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("history of unknown resource: %v", err)
	}
	if _, _, err := s.History(ctx, store.HistoryOptions{Offset: -1}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("negative offset: %v", err)
	}
}

func testHistoryAt(t *testing.T, open Opener) {
	s := open(t)
	put(t, s, stamped("Patient", "a", 1, 1))
	put(t, s, stamped("Patient", "a", 2, 3))
	put(t, s, stamped("Patient", "b", 1, 4))
	put(t, s, &store.Write{Type: "Patient", ID: "b", Version: 2, Method: "DELETE", Deleted: true, LastUpdated: t0.Add(6 * time.Minute)})
	put(t, s, stamped("Observation", "o", 1, 5))

	at := func(minute int) time.Time { return t0.Add(time.Duration(minute) * time.Minute) }
	history(t, s, store.HistoryOptions{At: at(0)}, 0)
	history(t, s, store.HistoryOptions{At: at(1)}, 1, "Patient/a/1")
	history(t, s, store.HistoryOptions{At: at(2)}, 1, "Patient/a/1")
	history(t, s, store.HistoryOptions{At: at(3)}, 1, "Patient/a/2")
	history(t, s, store.HistoryOptions{At: at(5)}, 3, "Observation/o/1", "Patient/b/1", "Patient/a/2")
	history(t, s, store.HistoryOptions{Type: "Patient", At: at(5)}, 2, "Patient/b/1", "Patient/a/2")
	history(t, s, store.HistoryOptions{Type: "Patient", At: at(7)}, 2, "Patient/b/2", "Patient/a/2")
	history(t, s, store.HistoryOptions{Type: "Patient", ID: "a", At: at(2)}, 1, "Patient/a/1")
	history(t, s, store.HistoryOptions{Type: "Patient", At: at(7), Since: at(4)}, 1, "Patient/b/2")
}
