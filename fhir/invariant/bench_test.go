package invariant

import (
	"context"
	"testing"
	"time"

	"phix/fhir"
)

// BenchmarkCheck runs Check over every Synthea resource and, in the same
// iterations, fhir.Validate over the same resources: it reports
// resources/s for both and check/validate, the time ratio (stable on a
// noisy machine). Run with GOMAXPROCS=1 for the one-core figure.
func BenchmarkCheck(b *testing.B) {
	res := syntheaResources(b)
	ctx := context.Background()
	Check(ctx, res[0], Options{}) // compile and load tables outside the timing
	var tCheck, tValidate time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for _, r := range res {
			if is := fhir.Validate(r); len(is) > 0 {
				b.Fatal("invalid resource")
			}
		}
		t1 := time.Now()
		for _, r := range res {
			Check(ctx, r, Options{})
		}
		t2 := time.Now()
		tValidate += t1.Sub(t0)
		tCheck += t2.Sub(t1)
	}
	n := float64(len(res) * b.N)
	b.ReportMetric(n/tCheck.Seconds(), "check-res/s")
	b.ReportMetric(n/tValidate.Seconds(), "validate-res/s")
	b.ReportMetric(tCheck.Seconds()/tValidate.Seconds(), "check/validate")
	b.ReportMetric(0, "ns/op")
}
