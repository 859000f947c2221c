package phi_test

import (
	"context"
	"testing"

	"phix/fhir"
	"phix/suite"
)

// FuzzOpen feeds random stored JSON to Open: it must never panic and never
// succeed on something it did not seal.
func FuzzOpen(f *testing.F) {
	e := newEnv(f, suite.Intl)
	stored, _, err := e.p.Seal(context.Background(), patient(), "p1")
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := fhir.Marshal(stored)
	f.Add(raw)
	f.Add([]byte(`{"resourceType":"Patient","id":"x"}`))
	f.Add([]byte(`{"resourceType":"Patient","id":"x","extension":[{"url":"http://example.org/fhir/StructureDefinition/hmac-authentication"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := fhir.Parse(data, fhir.ParseOptions{})
		if err != nil {
			return
		}
		_, _ = e.p.OpenJSON(context.Background(), data)
		got, err := e.p.Open(context.Background(), r)
		if err == nil && string(data) != string(raw) {
			c1, _ := fhir.Canonical(r)
			c2, _ := fhir.Canonical(stored)
			if string(c1) != string(c2) {
				t.Fatalf("Open accepted a resource it did not seal: %v", got.Type)
			}
		}
	})
}
