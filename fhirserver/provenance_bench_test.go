package fhirserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkCreateProvenance measures what the signed Provenance adds to a
// write: the same create (one Patient, SQLite, return=minimal) against two
// servers over one store, one signing and one not, alternating request by
// request. Reports the p50 of each, the p50 added per create in µs and the
// on/off ratio; "tx100" does the same for a 100-entry transaction (one
// Provenance naming 100 targets). Run with -count 5 and take medians:
//
//	go test -run '^$' -bench CreateProvenance -benchtime 1x -count 5 ./fhirserver
func BenchmarkCreateProvenance(b *testing.B) {
	for _, sid := range []string{"intl", "gm"} {
		b.Run(sid+"/create", func(b *testing.B) {
			mod, _ := withSigning(b, sid)
			st := openSQLite(b)
			on, off := newEnv(b, st, mod), newEnv(b, st)
			body, _ := json.Marshal(patient("Bench", "Prov"))
			benchAlternate(b, on, off, "/Patient", body, min(max(b.N, 300), 3000))
		})
		b.Run(sid+"/tx100", func(b *testing.B) {
			mod, _ := withSigning(b, sid)
			st := openSQLite(b)
			on, off := newEnv(b, st, mod), newEnv(b, st)
			entries := make([]any, 100)
			for i := range entries {
				entries[i] = map[string]any{"resource": patient("Bench", "Tx"), "request": map[string]any{"method": "POST", "url": "Patient"}}
			}
			body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
			benchAlternate(b, on, off, "", body, min(max(b.N, 20), 200))
		})
	}
}

// benchAlternate posts body n times to each server, alternating, and
// reports the latencies.
func benchAlternate(b *testing.B, on, off *env, path string, body []byte, n int) {
	c := benchClient()
	post := func(e *env) time.Duration {
		req, _ := http.NewRequest("POST", e.base+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.token)
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Prefer", "return=minimal")
		t0 := time.Now()
		res, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode >= 300 {
			b.Fatalf("status %d", res.StatusCode)
		}
		return time.Since(t0)
	}
	latOn := make([]time.Duration, 0, n)
	latOff := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		latOff = append(latOff, post(off))
		latOn = append(latOn, post(on))
	}
	b.StopTimer()
	pOn, pOff := percentile(latOn, 50), percentile(latOff, 50)
	b.ReportMetric(float64(pOff.Microseconds()), "p50-off-µs")
	b.ReportMetric(float64(pOn.Microseconds()), "p50-on-µs")
	b.ReportMetric(float64((pOn - pOff).Microseconds()), "added-µs")
	b.ReportMetric(float64(pOn)/float64(pOff), "on/off")
}
