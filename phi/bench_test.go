package phi_test

import (
	"context"
	"testing"
	"time"

	"phix/fhir"
	"phix/suite"
)

// benchSet is one Synthea patient's resources with their JSON.
func benchSet(b *testing.B) (string, []*fhir.Resource, [][]byte) {
	bs := synthea(b, 1)
	var raws [][]byte
	for _, r := range bs[0].resources {
		raw, err := fhir.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, raw)
	}
	return bs[0].patientID, bs[0].resources, raws
}

// baseline times fhir.Parse+Marshal of every resource once.
func baseline(b *testing.B, raws [][]byte) time.Duration {
	start := time.Now()
	for _, raw := range raws {
		r, err := fhir.Parse(raw, fhir.ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fhir.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkSeal: Parse + Seal + Marshal per resource (the write path's
// protection), reported per resource and as a ratio to Parse+Marshal of the
// same resources measured in the same run.
func BenchmarkSeal(b *testing.B) {
	for _, sid := range []suite.ID{suite.Intl, suite.GM} {
		b.Run(string(sid), func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b, sid)
			pid, _, raws := benchSet(b)
			var base, prot time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				base += baseline(b, raws)
				start := time.Now()
				for _, raw := range raws {
					r, _ := fhir.Parse(raw, fhir.ParseOptions{})
					st, _, err := e.p.Seal(ctx, r, pid)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := fhir.Marshal(st); err != nil {
						b.Fatal(err)
					}
				}
				prot += time.Since(start)
			}
			n := float64(b.N * len(raws))
			b.ReportMetric(float64(prot.Nanoseconds())/n, "ns/resource")
			b.ReportMetric(n/prot.Seconds(), "resources/s")
			b.ReportMetric(float64(prot)/float64(base), "x_parse+marshal")
		})
	}
}

// BenchmarkOpen: Parse + Open (HMAC verify and decrypt) + Marshal per stored
// resource, the read path, as a ratio to Parse+Marshal of the plaintext.
func BenchmarkOpen(b *testing.B) {
	for _, sid := range []suite.ID{suite.Intl, suite.GM} {
		b.Run(string(sid), func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b, sid)
			pid, rs, raws := benchSet(b)
			var stored [][]byte
			for _, r := range rs {
				st, _, err := e.p.Seal(ctx, r, pid)
				if err != nil {
					b.Fatal(err)
				}
				sb, _ := fhir.Marshal(st)
				stored = append(stored, sb)
			}
			var base, prot time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				base += baseline(b, raws)
				start := time.Now()
				for _, raw := range stored {
					got, err := e.p.OpenJSON(ctx, raw)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := fhir.Marshal(got); err != nil {
						b.Fatal(err)
					}
				}
				prot += time.Since(start)
			}
			n := float64(b.N * len(raws))
			b.ReportMetric(float64(prot.Nanoseconds())/n, "ns/resource")
			b.ReportMetric(float64(prot)/float64(base), "x_parse+marshal")
		})
	}
}
