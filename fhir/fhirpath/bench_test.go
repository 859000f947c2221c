package fhirpath

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// benchPatient is a small Patient like the ones in the conformance inputs.
const benchPatient = `{"resourceType":"Patient","id":"example","active":true,
 "name":[{"use":"official","family":"Chalmers","given":["Peter","James"]},
         {"use":"usual","given":["Jim"]},
         {"use":"maiden","family":"Windsor","given":["Peter","James"],"period":{"end":"2002"}}],
 "gender":"male","birthDate":"1974-12-25"}`

func mustJSON(tb testing.TB, s string) map[string]any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkEvaluateOfficialFamily is the hot path of search extraction. The
// "raw-ns/op" metric is a hand-written Go walk doing the same selection,
// measured in the same run, and "ratio" is engine/raw.
func BenchmarkEvaluateOfficialFamily(b *testing.B) {
	p := mustJSON(b, benchPatient)
	expr := MustCompile("Patient.name.where(use='official').family")
	in := Collection{NewResourceItem(p)}
	ec := &EvalContext{}
	if out, err := expr.Evaluate(ec, in); err != nil || len(out) != 1 {
		b.Fatalf("got %v, %v", out, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := expr.Evaluate(ec, in); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	engine := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	start := time.Now()
	for i := 0; i < b.N; i++ {
		rawOfficialFamily(p)
	}
	rawNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
	b.ReportMetric(rawNs, "raw-ns/op")
	if rawNs > 0 {
		b.ReportMetric(engine/rawNs, "ratio")
	}
}

var sinkStrings []string

func rawOfficialFamily(p map[string]any) {
	var out []string
	names, _ := p["name"].([]any)
	for _, n := range names {
		m, _ := n.(map[string]any)
		if m["use"] == "official" {
			if f, ok := m["family"].(string); ok {
				out = append(out, f)
			}
		}
	}
	sinkStrings = out
}

// BenchmarkCompile measures parsing and checking a typical invariant.
func BenchmarkCompile(b *testing.B) {
	const src = "Patient.identifier.period.all(start.empty() or end.empty() or (start.lowBoundary() <= end.highBoundary())) and name.where(use = 'official').family.exists()"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCached measures a compile-cache hit.
func BenchmarkCached(b *testing.B) {
	const src = "Patient.name.where(use='official').family"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Cached(src); err != nil {
			b.Fatal(err)
		}
	}
}
