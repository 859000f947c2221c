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
// (every parameter's expression evaluated), with the fast path measured in
// the same run: engine-ratio is engine time / fast-path time per resource.
func BenchmarkExtractEngine(b *testing.B) {
	rs := syntheaResources(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := search.ExtractFHIRPath(rs[i%len(rs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perRes := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(1/perRes, "resources/s")

	// Peer: the fast path over the same resources, same count (bounded).
	n := min(b.N, 20000)
	start := nowNanos()
	for i := 0; i < n; i++ {
		search.Extract(rs[i%len(rs)])
	}
	fastPerRes := float64(nowNanos()-start) / 1e9 / float64(n)
	b.ReportMetric(perRes/fastPerRes, "engine-ratio")
}

// BenchmarkFullTextOf tokenizes Synthea resources for the full-text index
// (narrative and content) and reports the ratio to Extract on the same
// resources in the same run (extract-ratio: tokenizing time / Extract time).
func BenchmarkFullTextOf(b *testing.B) {
	rs := syntheaResources(b)
	tokens := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := search.FullTextOf(rs[i%len(rs)].Object)
		tokens += len(d.Content)
	}
	b.StopTimer()
	perRes := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(tokens)/float64(b.N), "tokens/resource")
	n := min(b.N, 20000)
	start := nowNanos()
	for i := 0; i < n; i++ {
		search.Extract(rs[i%len(rs)])
	}
	b.ReportMetric(perRes/(float64(nowNanos()-start)/1e9/float64(n)), "extract-ratio")
}
