package deid

import (
	"context"
	"testing"
	"time"

	"phix/fhir"
	"phix/suite"
)

// BenchmarkSafeHarbor de-identifies every Synthea resource with the
// safe-harbor profile and reports resources/s, beside a deep copy of the
// same resources (the floor any non-mutating engine pays) as a ratio.
func BenchmarkSafeHarbor(b *testing.B) {
	var objs []map[string]any
	for _, bu := range syntheaBundles(b) {
		for _, en := range arr(bu.Object["entry"]) {
			objs = append(objs, en.(map[string]any)["resource"].(map[string]any))
		}
	}
	e := engine(b, "safe-harbor", testKeys(b, suite.Intl, 1))
	ctx := context.Background()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		o := objs[i%len(objs)]
		if _, err := e.Resource(ctx, &fhir.Resource{Type: o["resourceType"].(string), Object: o}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.StopTimer()
	engineNs := float64(b.Elapsed().Nanoseconds()) / float64(n)
	b.ReportMetric(1e9/engineNs, "resources/s")
	// Raw peer, same run: a deep copy of each resource (what any engine
	// that does not mutate its input pays at least).
	start := time.Now()
	for i := 0; i < b.N; i++ {
		sinkCopy = deepCopy(objs[i%len(objs)], 0)
	}
	rawNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.ReportMetric(engineNs/rawNs, "x-deepcopy")
}

var sinkCopy any
