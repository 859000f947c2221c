package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// Synthetic returns version 1 of a made-up Observation number i with a body of
// about 1.5 KB and 22 index entries, shaped like a Synthea observation.
func Synthetic(i int) *store.Write {
	id := fmt.Sprintf("obs-%08d", i)
	pat := fmt.Sprintf("pat-%05d", i%5000)
	enc := fmt.Sprintf("enc-%06d", i/7)
	eff := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 37 * time.Minute)
	val := 50 + float64(i%1000)/10
	body := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"meta":{"versionId":"1","lastUpdated":%q},`+
		`"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},`+
		`"subject":{"reference":"Patient/%s"},"encounter":{"reference":"Encounter/%s"},"effectiveDateTime":%q,"issued":%q,`+
		`"valueQuantity":{"value":%g,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},"note":[{"text":%q}]}`,
		id, eff.Format(time.RFC3339Nano), pat, enc, eff.Format(time.RFC3339), eff.Format(time.RFC3339), val, strings.Repeat("x", 700))
	e := []search.Entry{
		tok("_id", "", id),
		date("_lastUpdated", eff, eff),
		tok("status", "http://hl7.org/fhir/observation-status", "final"),
		tokText("category", "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "vital-signs"),
		tokText("code", "http://loinc.org", "8867-4", "Heart rate"),
		tokText("combo-code", "http://loinc.org", "8867-4", "Heart rate"),
		ref("subject", "Patient", pat),
		ref("patient", "Patient", pat),
		ref("encounter", "Encounter", enc),
		date("date", eff, eff.Add(time.Second-1)),
		qty("value-quantity", val, "http://unitsofmeasure.org", "/min"),
		qty("combo-value-quantity", val, "http://unitsofmeasure.org", "/min"),
		tok("identifier", "urn:ietf:rfc:3986", "urn:uuid:"+id),
		uri("_profile", "http://hl7.org/fhir/StructureDefinition/heartrate"),
		tok("_tag", "urn:phix:source", "synthea"),
		tok("_security", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "N"),
		str("note", "heart rate observation"),
		ref("performer", "Practitioner", "prac-1"),
		tok("data-absent-reason", "", "none"),
		date("issued", eff, eff),
		tok("method", "http://snomed.info/sct", "1234"),
		str("_text", "heart rate"),
	}
	return &store.Write{Type: "Observation", ID: id, Version: 1, Method: "POST", LastUpdated: eff, Body: []byte(body), Index: e}
}

// BenchPut stores b.N synthetic resources in transactions of 1,000 and
// reports resources/s.
func BenchPut(b *testing.B, s store.Store) {
	const batch = 1000
	ctx := context.Background()
	ws := make([]*store.Write, 0, batch)
	var spent time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		// Generating the records is not the store's work.
		b.StopTimer()
		ws = ws[:0]
		for j := i; j < min(i+batch, b.N); j++ {
			ws = append(ws, Synthetic(j))
		}
		b.StartTimer()
		start := time.Now()
		err := s.Tx(ctx, func(tx store.Tx) error {
			for _, w := range ws {
				if _, err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
		spent += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/spent.Seconds(), "resources/s")
}

// Load stores n synthetic resources for the read benchmarks.
func Load(tb testing.TB, s store.Store, n int) {
	ctx := context.Background()
	for i := 0; i < n; i += 1000 {
		err := s.Tx(ctx, func(tx store.Tx) error {
			for j := i; j < min(i+1000, n); j++ {
				if _, err := tx.Put(ctx, Synthetic(j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchRead reads random resources among the first n and reports the median
// latency.
func BenchRead(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("obs-%08d", r.IntN(n))
		st := time.Now()
		if _, err := s.Read(ctx, "Observation", id); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(st)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.StartTimer()
}

// BenchReadParallel reads from 16 goroutines and reports reads/s.
func BenchReadParallel(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	p := (16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	b.SetParallelism(p)
	var seed atomic.Uint64
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 7))
		for pb.Next() {
			if _, err := s.Read(ctx, "Observation", fmt.Sprintf("obs-%08d", r.IntN(n))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
}

// BenchSearch runs a typical patient-scoped search with a date range and a
// sort, over the first n resources.
func BenchSearch(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pat := fmt.Sprintf("pat-%05d", r.IntN(min(n, 5000)))
		qq := q("Observation",
			clause("subject", search.TypeReference, "", search.Value{RefType: "Patient", RefID: pat}),
			clause("code", search.TypeToken, "", tv("http://loinc.org", "8867-4")),
			clause("date", search.TypeDate, "", search.Value{Prefix: search.PrefixGe, Lo: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC), Hi: time.Date(2015, 1, 1, 23, 59, 59, 0, time.UTC)}))
		qq.Sort = []search.Sort{{Param: param("date", search.TypeDate), Descending: true}}
		qq.Count = 20
		if _, err := s.Search(ctx, qq); err != nil {
			b.Fatal(err)
		}
	}
}
