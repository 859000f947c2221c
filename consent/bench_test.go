package consent

import (
	"context"
	"testing"
	"time"
)

// The decision benchmarks report ns per decision; the ratio metric compares
// with a map lookup measured in the same run (the machine is noisy).

func benchEngine(b *testing.B, provision string) (*Engine, Request) {
	clock := &fakeClock{t: when}
	e, src := newEngine(b, clock, Options{})
	intl, _, _ := testKeys(b)
	src.set("Patient/p1", signed(b, parse(b, consentJSON("c1", provision)), intl),
		signed(b, parse(b, consentJSON("c2", `{"type":"deny","actor":[{"role":{"coding":[{"code":"X"}]},"reference":{"reference":"Practitioner/dr2"}}]}`)), intl))
	return e, classReq()
}

func mapBaseline() time.Duration {
	m := map[decisionKey]int{{actor: "a"}: 1}
	const n = 1_000_000
	start := time.Now()
	s := 0
	for range n {
		s += m[decisionKey{actor: "a"}]
	}
	if s != n {
		panic("baseline")
	}
	return time.Since(start) / n
}

func BenchmarkDecideCached(b *testing.B) {
	e, req := benchEngine(b, `{"type":"permit","actor":[`+actorDr1+`],"provision":[{"type":"deny","class":[{"code":"MedicationRequest"}]}]}`)
	ctx := context.Background()
	e.Decide(ctx, req)
	b.ResetTimer()
	for b.Loop() {
		if d, _ := e.Decide(ctx, req); d.Effect != Permit {
			b.Fatal(d.Effect)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(mapBaseline().Nanoseconds()+1), "x-maplookup")
}

// BenchmarkDecideInstance uses the 3-deep nested consent, whose labels and
// codes make every decision resource-specific: evaluated each time against
// the cached, verified consents.
func BenchmarkDecideInstance(b *testing.B) {
	e, req := benchEngine(b, nested3)
	ctx := context.Background()
	e.Decide(ctx, req)
	b.ResetTimer()
	for b.Loop() {
		if d, _ := e.Decide(ctx, req); d.Effect != Permit {
			b.Fatal(d.Effect)
		}
	}
}

// BenchmarkEvaluateUncached is the pure evaluation of compiled consents
// (no cache at all).
func BenchmarkEvaluateUncached(b *testing.B) {
	cs := []*Consent{compileSigned(b, "c1", nested3), compileSigned(b, "c2", `{"type":"deny","actor":[{"role":{"coding":[{"code":"X"}]},"reference":{"reference":"Practitioner/dr2"}}]}`)}
	req := baseReq()
	for b.Loop() {
		if d := Evaluate(cs, req); d.Effect != Permit {
			b.Fatal(d.Effect)
		}
	}
}

// BenchmarkVerifyLoad is a cold load: compile and verify the consents
// (ML-DSA-87), which the 60 s cache amortises.
func BenchmarkVerifyLoad(b *testing.B) {
	intl, _, _ := testKeys(b)
	r := signed(b, parse(b, consentJSON("c1", nested3)), intl)
	keys := trusted(b)
	for b.Loop() {
		if c, _ := Compile(r, keys); !c.Verified {
			b.Fatal(c.SigReason)
		}
	}
}
