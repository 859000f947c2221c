package fhir

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkParseValidate parses and validates every Synthea resource
// (Bundle.entry.resource, re-encoded one by one). Each iteration also
// decodes the same bytes with encoding/json (UseNumber) into map[string]any,
// the raw peer, interleaved so both see the same machine load. Metrics:
// resources/s (ours), json-resources/s (peer), vs-json (ours/peer
// throughput; > 1 means Parse+Validate is faster than bare encoding/json).
func BenchmarkParseValidate(b *testing.B) {
	res := syntheaResources(b)
	var total int64
	for _, r := range res {
		total += int64(len(r))
	}
	b.SetBytes(total)
	var ours, peer time.Duration
	for b.Loop() {
		start := time.Now()
		for _, data := range res {
			r, err := Parse(data, ParseOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if is := Validate(r); len(is) > 0 {
				b.Fatal(issuesText(is))
			}
		}
		mid := time.Now()
		for _, data := range res {
			d := json.NewDecoder(bytes.NewReader(data))
			d.UseNumber()
			var m map[string]any
			if err := d.Decode(&m); err != nil {
				b.Fatal(err)
			}
		}
		ours += mid.Sub(start)
		peer += time.Since(mid)
	}
	n := float64(b.N) * float64(len(res))
	b.ReportMetric(n/ours.Seconds(), "resources/s")
	b.ReportMetric(n/peer.Seconds(), "json-resources/s")
	b.ReportMetric(peer.Seconds()/ours.Seconds(), "vs-json")
}

// BenchmarkParse is Parse alone over the same resources.
func BenchmarkParse(b *testing.B) {
	res := syntheaResources(b)
	for b.Loop() {
		for _, data := range res {
			if _, err := Parse(data, ParseOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(res))/b.Elapsed().Seconds(), "resources/s")
}
