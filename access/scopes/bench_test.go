package scopes

import (
	"fmt"
	"testing"
	"time"

	"phix/fhir"
	"phix/fhir/search"
)

func page(b *testing.B) []*fhir.Resource {
	var out []*fhir.Resource
	for i := range 100 {
		cat := "laboratory"
		if i%2 == 1 {
			cat = "vital-signs"
		}
		r, err := fhir.Parse([]byte(fmt.Sprintf(`{"resourceType":"Observation","id":"o%d","status":"final",
		 "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"%s"}]}],
		 "code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"Patient/p1"}}`, i, cat)), fhir.ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// BenchmarkMatchesPage filters a 100-resource search page through a
// query-restricted scope; x-extract compares with extracting all index
// entries of the same page (the work a store does anyway at write time).
func BenchmarkMatchesPage(b *testing.B) {
	s, err := Parse(labScope)
	if err != nil {
		b.Fatal(err)
	}
	p := page(b)
	for b.Loop() {
		n := 0
		for _, r := range p {
			if s.Matches(Read, Patient, r) {
				n++
			}
		}
		if n != 50 {
			b.Fatal(n)
		}
	}
	perPage := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.StopTimer()
	const rounds = 20
	start := time.Now()
	for range rounds {
		for _, r := range p {
			search.Extract(r)
		}
	}
	b.ReportMetric(perPage/(float64(time.Since(start).Nanoseconds())/rounds), "x-extract")
}
