package fhirserver

import (
	"testing"
	"time"
)

// BenchmarkReadAudit reads the same resources through two servers over one
// SQLite store, one with the audit log and one without, alternating request
// by request: p50 of each and the p50 the audit adds per read, in µs
// (target ≤ 50 µs).
func BenchmarkReadAudit(b *testing.B) {
	on := newAuditEnv(b)
	off := newEnv(b, on.store)
	var paths []string
	for i := 0; i < 50; i++ {
		r := on.do("POST", "/Patient", patient("Bench", "P"+itoa(i)))
		if r.status != 201 {
			b.Fatalf("seed: %d", r.status)
		}
		paths = append(paths, "/Patient/"+r.str("id"))
	}
	c := benchClient()
	n := min(max(b.N, 2000), 20000)
	latOn := make([]time.Duration, 0, n)
	latOff := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		p := paths[i%len(paths)]
		t0 := time.Now()
		getOK(b, c, off.base+p, off.token)
		latOff = append(latOff, time.Since(t0))
		t0 = time.Now()
		getOK(b, c, on.base+p, on.token)
		latOn = append(latOn, time.Since(t0))
	}
	b.StopTimer()
	pOn, pOff := percentile(latOn, 50), percentile(latOff, 50)
	b.ReportMetric(float64(pOff.Microseconds()), "p50-off-µs")
	b.ReportMetric(float64(pOn.Microseconds()), "p50-on-µs")
	b.ReportMetric(float64((pOn - pOff).Microseconds()), "added-µs/read")
	b.ReportMetric(float64(pOn)/float64(pOff), "on/off")
}
