package fhirserver

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentUpdates has 8 clients update one resource at once: every
// successful update is exactly one new version, none is lost, and a 409 is
// the only other answer.
func TestConcurrentUpdates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		p := patient("Race", "Condition")
		p["id"] = "race-1"
		e.do("PUT", "/Patient/race-1", p).want(t, 201)
		var ok, conflict atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					q := patient("Race", "W"+strconv.Itoa(w)+"-"+strconv.Itoa(i))
					q["id"] = "race-1"
					r := e.do("PUT", "/Patient/race-1", q)
					switch r.status {
					case 200:
						ok.Add(1)
					case 409:
						conflict.Add(1)
					default:
						t.Errorf("status %d: %s", r.status, r.body)
					}
				}
			}(w)
		}
		wg.Wait()
		cur := e.do("GET", "/Patient/race-1", nil).want(t, 200)
		if v := cur.str("meta", "versionId"); v != strconv.FormatInt(ok.Load()+1, 10) {
			t.Fatalf("version %s after %d successful updates", v, ok.Load())
		}
		h := e.do("GET", "/Patient/race-1/_history?_count=100", nil).want(t, 200)
		if h.total() != int(ok.Load())+1 {
			t.Fatalf("history %d, want %d", h.total(), ok.Load()+1)
		}
		t.Logf("%d updates, %d conflicts", ok.Load(), conflict.Load())
	})
}

// TestConcurrentConditionalCreate sends the same conditional create from 6
// clients at once: exactly one resource is created.
func TestConcurrentConditionalCreate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var created, matched atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.do("POST", "/Patient", patient("Once", "Only"), "If-None-Exist", "identifier=urn:test:mrn|Once-Only")
				switch r.status {
				case 201:
					created.Add(1)
				case 200:
					matched.Add(1)
				case 409:
					// the store kept losing the race under load: an honest "retry"
				default:
					t.Errorf("status %d: %s", r.status, r.body)
				}
			}()
		}
		wg.Wait()
		if n := e.do("GET", "/Patient?identifier=urn:test:mrn|Once-Only", nil).want(t, 200).total(); n != 1 || created.Load() != 1 {
			t.Fatalf("%d stored, %d created, %d matched", n, created.Load(), matched.Load())
		}
	})
}
