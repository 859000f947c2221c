package search_test

import (
	"encoding/json"
	"testing"

	"phix/fhir/search"
)

// BenchmarkExtract indexes Synthea resources round-robin and reports
// resources/s. For scale it also reports the ratio to re-encoding the same
// resource with encoding/json (json-ratio: extraction time / marshal time),
// a peer cost measured in the same run.
func BenchmarkExtract(b *testing.B) {
	rs := syntheaResources(b)
	entries := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		entries += len(search.Extract(rs[i%len(rs)]))
	}
	b.StopTimer()
	perRes := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(1/perRes, "resources/s")
	b.ReportMetric(float64(entries)/float64(b.N), "entries/resource")

	// Peer: json.Marshal of the same resources, same number of iterations
	// (bounded so a long -benchtime does not double the run).
	n := min(b.N, 20000)
	start := nowNanos()
	for i := 0; i < n; i++ {
		if _, err := json.Marshal(rs[i%len(rs)].Object); err != nil {
			b.Fatal(err)
		}
	}
	marshalPerRes := float64(nowNanos()-start) / 1e9 / float64(n)
	b.ReportMetric(perRes/marshalPerRes, "json-ratio")
}

// BenchmarkParse parses a typical clinical query.
func BenchmarkParse(b *testing.B) {
	q := mustQueryB(b, "patient=Patient/123&code=http://loinc.org|29463-7,http://loinc.org|3141-9&date=ge2024-01-01&date=lt2024-07-01T00:00:00Z&_sort=-date&_count=50&_include=Observation:subject")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, err := search.Parse("Observation", q, search.ParseOptions{Strict: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExtractEngine is BenchmarkExtract through the FHIRPath engine
// (every parameter's expression evaluated), with the fast path timed on the
// same resource before or after each engine run, alternately: interleaving keeps the ratio
// (engine-ratio: engine time / fast-path time) meaningful on a loaded
// machine. ns/op covers both; engine-µs is the engine's share.
func BenchmarkExtractEngine(b *testing.B) {
	rs := syntheaResources(b)
	var eng, fast int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := rs[i%len(rs)]
		// Alternate which runs first, so neither always finds the
		// resource warm in the cache.
		if i%2 == 1 {
			st := nowNanos()
			search.Extract(r)
			fast += nowNanos() - st
		}
		st := nowNanos()
		if _, err := search.ExtractFHIRPath(r); err != nil {
			b.Fatal(err)
		}
		eng += nowNanos() - st
		if i%2 == 0 {
			st := nowNanos()
			search.Extract(r)
			fast += nowNanos() - st
		}
	}
	b.ReportMetric(float64(eng)/float64(b.N)/1e3, "engine-µs")
	b.ReportMetric(float64(fast)/float64(b.N)/1e3, "fast-µs")
	b.ReportMetric(float64(eng)/float64(fast), "engine-ratio")
}

// BenchmarkFullTextOf tokenizes Synthea resources for the full-text index
// (narrative and content), with Extract timed on the same resource right
// before or after, alternately (extract-ratio: tokenizing time / Extract time).
func BenchmarkFullTextOf(b *testing.B) {
	rs := syntheaResources(b)
	tokens := 0
	var ft, ex int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := rs[i%len(rs)]
		if i%2 == 1 {
			st := nowNanos()
			search.Extract(r)
			ex += nowNanos() - st
		}
		st := nowNanos()
		d := search.FullTextOf(r.Object)
		ft += nowNanos() - st
		if i%2 == 0 {
			st := nowNanos()
			search.Extract(r)
			ex += nowNanos() - st
		}
		tokens += len(d.Content)
	}
	b.ReportMetric(float64(tokens)/float64(b.N), "tokens/resource")
	b.ReportMetric(float64(ft)/float64(b.N)/1e3, "fulltext-µs")
	b.ReportMetric(float64(ft)/float64(ex), "extract-ratio")
}
