package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// BenchPatients is the number of patients Synthetic's observations refer to.
const BenchPatients = 5000

// benchOrgs is the number of organizations the patients belong to.
const benchOrgs = 200

// LoadGraph stores the patients (pat-00000..) the synthetic observations
// reference, each with a family name and a managing organization, and the
// organizations, so chained and _include searches have targets.
func LoadGraph(tb testing.TB, s store.Store) {
	ctx := context.Background()
	err := s.Tx(ctx, func(tx store.Tx) error {
		for o := 0; o < benchOrgs; o++ {
			id := fmt.Sprintf("org-%03d", o)
			w := write("Organization", id, 1, str("name", fmt.Sprintf("Hospital %03d", o)))
			if _, err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		for p := 0; p < BenchPatients; p++ {
			id := fmt.Sprintf("pat-%05d", p)
			w := write("Patient", id, 1,
				str("family", fmt.Sprintf("Family%05d", p)), str("name", fmt.Sprintf("Family%05d", p)),
				ref("organization", "Organization", fmt.Sprintf("org-%03d", p%benchOrgs)))
			if _, err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// benchLatency runs q b.N times and reports the median and p95 latency.
func benchLatency(b *testing.B, s store.Store, next func(r *rand.Rand) *search.Query) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		qq := next(r)
		start := time.Now()
		res, err := s.Search(ctx, qq)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Matches) == 0 {
			b.Fatal("benchmark query matched nothing")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}

// BenchPatientCode is Observation?patient=X&code=Y (with the total).
func BenchPatientCode(b *testing.B, s store.Store) {
	benchLatency(b, s, func(r *rand.Rand) *search.Query {
		return q("Observation",
			clause("patient", search.TypeReference, "", search.Value{RefType: "Patient", RefID: fmt.Sprintf("pat-%05d", r.IntN(BenchPatients))}),
			clause("code", search.TypeToken, "", tv("http://loinc.org", "8867-4")))
	})
}

// BenchChain1 is Observation?subject:Patient.family=X&code=Y.
func BenchChain1(b *testing.B, s store.Store) {
	benchLatency(b, s, func(r *rand.Rand) *search.Query {
		return q("Observation",
			chained(clause("family", search.TypeString, "", sv(fmt.Sprintf("family%05d", r.IntN(BenchPatients)))), fwd("subject", "Patient")),
			clause("code", search.TypeToken, "", tv("http://loinc.org", "8867-4")))
	})
}

// BenchChain2 is the two-level Observation?patient.organization.name=X
// (about 1/200 of the observations match; page of 20 plus the total).
func BenchChain2(b *testing.B, s store.Store) {
	benchLatency(b, s, func(r *rand.Rand) *search.Query {
		qq := q("Observation",
			chained(clause("name", search.TypeString, "", sv(fmt.Sprintf("hospital %03d", r.IntN(benchOrgs)))),
				fwd("patient", "Patient"), fwd("organization", "Organization")))
		qq.Count = 20
		return qq
	})
}

// BenchInclude fetches count random observations by _id with
// _include=Observation:subject and _include:iterate=Patient:organization, and
// reports the include overhead against the same page without includes
// (x-no-include, measured in the same run): it should follow count, not the
// database size.
func BenchInclude(b *testing.B, s store.Store, n, count int) {
	page := func(r *rand.Rand) *search.Query {
		ids := make([]search.Value, count)
		for i := range ids {
			ids[i] = cv(fmt.Sprintf("obs-%08d", r.IntN(n)))
		}
		qq := q("Observation", clause("_id", search.TypeToken, "", ids...))
		qq.Total = search.TotalNone
		qq.Count = count
		return qq
	}
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 8))
	var base []time.Duration
	for i := 0; i < min(b.N, 200); i++ {
		start := time.Now()
		if _, err := s.Search(ctx, page(r)); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(start))
	}
	slices.Sort(base)
	benchLatency(b, s, func(r *rand.Rand) *search.Query {
		qq := page(r)
		qq.Include = []search.Include{{Source: "Observation", Param: "subject"}, {Source: "Patient", Param: "organization", Iterate: true}}
		return qq
	})
	b.ReportMetric(float64(base[len(base)/2].Microseconds())/1000, "no-include-p50-ms")
}
