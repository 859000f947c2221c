package consent

import (
	"context"
	"testing"
	"time"

	"phix/fhir"
)

// FuzzEvaluate feeds arbitrary JSON as a Consent: compiling, evaluating
// and deciding must never panic, and a decision always has a known effect.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte(consentJSON("c1", nested3)))
	f.Add([]byte(consentJSON("c1", `{"type":"permit","data":[{"meaning":"related","reference":{"reference":"Patient/p1/*"}}]}`)))
	f.Add([]byte(consentJSON("c1", `{"type":"deny","dataPeriod":{"start":"2025"},"period":{"end":"2026-12"}}`)))
	f.Add([]byte(`{"resourceType":"Consent","id":"x","status":"active","patient":{"reference":"Patient/p1"},"provision":{"provision":[{"provision":[{}]}]}}`))
	f.Add([]byte(`{"resourceType":"Consent","id":"x","extension":[{"url":"` + SignatureURL + `","extension":[{"url":"algorithm","valueString":"SM2"},{"url":"signature","valueString":"AAAA"},{"url":"key-id","valueString":"00"}]}]}`))
	keys := NewTrustedKeys()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := fhir.Parse(data, fhir.ParseOptions{})
		if err != nil {
			return
		}
		c, err := Compile(r, keys)
		if err != nil {
			return
		}
		c.Verified = true // evaluate as if it verified, to reach every path
		for _, req := range []Request{baseReq(), {Time: when}, {Patient: "Patient/p1", Resource: Resource{Type: "Observation"}, Time: when}} {
			d := Evaluate([]*Consent{c}, req)
			switch d.Effect {
			case Permit, Deny, NotApplicable:
			default:
				t.Fatalf("effect %q", d.Effect)
			}
		}
		src := SourceFunc(func(context.Context, string) ([]*fhir.Resource, error) { return []*fhir.Resource{r}, nil })
		e := NewEngine(src, keys, Options{Now: func() time.Time { return when }})
		if _, err := e.Decide(context.Background(), Request{Patient: "Patient/p1"}); err != nil {
			t.Fatal(err)
		}
	})
}
