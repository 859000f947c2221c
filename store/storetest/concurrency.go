package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"phix/fhir/search"
	"phix/store"
)

const (
	workers      = 6
	writesPerJob = 8
)

// testConcurrentSame has writers race on one resource: each reads the
// current version and writes the next, retrying on ErrConflict. No update may
// be lost and the versions must be dense.
func testConcurrentSame(t *testing.T, open Opener) {
	s := open(t)
	put(t, s, write("Patient", "p", 1))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writesPerJob; i++ {
				for attempt := 0; ; attempt++ {
					if attempt > 1000 {
						errs <- errors.New("too many conflicts")
						return
					}
					err := s.Tx(ctx, func(tx store.Tx) error {
						cur, err := tx.Read(ctx, "Patient", "p")
						if err != nil {
							return err
						}
						_, err = tx.Put(ctx, write("Patient", "p", cur.Version+1, tok("writer", "", fmt.Sprint(g))))
						return err
					})
					if errors.Is(err, store.ErrConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := int64(1 + workers*writesPerJob)
	r, err := s.Read(ctx, "Patient", "p")
	if err != nil || r.Version != want {
		t.Fatalf("final version %v %v, want %d", r, err, want)
	}
	hist, n, err := s.History(ctx, store.HistoryOptions{Type: "Patient", ID: "p", Count: 1000})
	if err != nil || n != int(want) || len(hist) != int(want) {
		t.Fatalf("history %d/%d %v", len(hist), n, err)
	}
	for i, h := range hist {
		if h.Version != want-int64(i) {
			t.Fatalf("history[%d] is version %d", i, h.Version)
		}
	}
	// Only the current version's entry is indexed.
	res, err := s.Search(ctx, q("Patient", clause("writer", search.TypeToken, "missing", missing(false))))
	if err != nil || res.Total != 1 {
		t.Fatalf("index after races: %v %v", res, err)
	}
}

func testConcurrentDifferent(t *testing.T, open Opener) {
	s := open(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers*writesPerJob)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writesPerJob; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				err := s.Tx(ctx, func(tx store.Tx) error {
					_, err := tx.Put(ctx, write("Patient", id, 1, tok("identifier", "urn:g", id)))
					if err != nil {
						return err
					}
					_, err = tx.Put(ctx, write("Patient", id, 2, tok("identifier", "urn:g", id), str("name", "x")))
					return err
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, err := s.Search(ctx, q("Patient", clause("name", search.TypeString, "", sv("x"))))
	if err != nil || res.Total != workers*writesPerJob {
		t.Fatalf("total %v %v", res, err)
	}
	_, n, err := s.History(ctx, store.HistoryOptions{Type: "Patient"})
	if err != nil || n != 2*workers*writesPerJob {
		t.Fatalf("history total %d %v", n, err)
	}
}

// testConditionalCreate races conditional creates (search, then create when
// nothing matched) on the same identifier: exactly one resource may result.
func testConditionalCreate(t *testing.T, open Opener) {
	s := open(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	created := make(chan string, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < 100; attempt++ {
				var made string
				err := s.Tx(ctx, func(tx store.Tx) error {
					made = ""
					res, err := tx.Search(ctx, q("Patient", clause("identifier", search.TypeToken, "", tv("urn:mrn", "777"))))
					if err != nil {
						return err
					}
					if len(res.Matches) > 0 {
						return nil
					}
					made = fmt.Sprintf("c%d", g)
					_, err = tx.Put(ctx, write("Patient", made, 1, tok("identifier", "urn:mrn", "777")))
					return err
				})
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					errs <- err
				} else if made != "" {
					created <- made
				}
				return
			}
			errs <- errors.New("conditional create never settled")
		}()
	}
	wg.Wait()
	close(errs)
	close(created)
	for err := range errs {
		t.Fatal(err)
	}
	var made []string
	for id := range created {
		made = append(made, id)
	}
	if len(made) != 1 {
		t.Fatalf("%d creators won: %v", len(made), made)
	}
	expect(t, s, q("Patient", clause("identifier", search.TypeToken, "", tv("urn:mrn", "777"))), "Patient/"+made[0])
}
