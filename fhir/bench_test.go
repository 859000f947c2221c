package fhir

import (
	"bytes"
	"encoding/json"
	"testing"
)

// BenchmarkParseValidate parses and validates every Synthea resource;
// the raw sub-benchmark decodes the same bytes with encoding/json into
// map[string]any, the peer to compare against (ratio = raw ns / ours ns).
func BenchmarkParseValidate(b *testing.B) {
	res := syntheaResources(b)
	var total int64
	for _, r := range res {
		total += int64(len(r))
	}
	b.Run("fhir", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			for _, data := range res {
				r, err := Parse(data, ParseOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if is := Validate(r); len(is) > 0 {
					b.Fatal(issuesText(is))
				}
			}
		}
		b.ReportMetric(float64(b.N)*float64(len(res))/b.Elapsed().Seconds(), "resources/s")
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			for _, data := range res {
				d := json.NewDecoder(bytesReader(data))
				d.UseNumber()
				var m map[string]any
				if err := d.Decode(&m); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N)*float64(len(res))/b.Elapsed().Seconds(), "resources/s")
	})
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
