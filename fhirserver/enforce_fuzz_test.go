package fhirserver

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"phix/access/policy"
	"phix/access/roles"
	"phix/consent"
	"phix/fhir"
)

// FuzzEnforceDecide drives the enforcement decision point (consent engine
// over a fuzzed, signed Consent + policy + scopes) with a fuzzed resource:
// it must not panic, a denial carries one of the enforcement codes and a
// content-free reason list, and an allowed resource with obligations still
// marshals after redaction.
func FuzzEnforceDecide(f *testing.F) {
	f.Add([]byte(`{"type":"deny","actor":[{"reference":{"reference":"Practitioner/lee"}}]}`),
		[]byte(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`), "TREAT", true)
	f.Add([]byte(`{"type":"permit","actor":[{"reference":{"reference":"Practitioner/lee"}}],"provision":[{"type":"deny","securityLabel":[{"code":"HIV"}]}]}`),
		[]byte(`{"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/p1"},"note":[{"text":"a","extension":[{"url":"`+inlineLabelURL+`","valueCoding":{"code":"HIV"}}]}]}`), "TREAT", true)
	f.Add([]byte(`{"type":"permit","period":{"start":"2020-01-01","end":"2021-01-01"}}`),
		[]byte(`{"resourceType":"Patient","id":"p1","meta":{"security":[{"code":"V"}]}}`), "ETREAT", false)
	f.Add([]byte(`{}`), []byte(`{"resourceType":"Condition","id":"c","subject":{"reference":"Patient/p1"},"code":{"coding":[{"system":"s","code":"1"}]}}`), "HRESCH", true)
	key, _ := consentKeys(f)
	pe, err := policy.Default()
	if err != nil {
		f.Fatal(err)
	}
	pe.Location = time.UTC
	pe.Now = func() time.Time { return time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC) }
	keys := consent.NewTrustedKeys(key.Public())
	codes := []Code{"PHI-6001", "PHI-6002", "PHI-6003", "PHI-6004", "PHI-6010", "PHI-6011", "PHI-6016", "PHI-6017", "PHI-6018"}
	f.Fuzz(func(t *testing.T, provision, resource []byte, purpose string, sign bool) {
		res, err := fhir.Parse(resource, fhir.ParseOptions{})
		if err != nil || res.ID == "" {
			return
		}
		var consents []*fhir.Resource
		c, err := fhir.Parse([]byte(`{"resourceType":"Consent","id":"cz","status":"active","patient":{"reference":"Patient/p1"},"dateTime":"2025-01-01T00:00:00Z","provision":`+string(provision)+`}`), fhir.ParseOptions{})
		if err == nil {
			if sign {
				if s, err := consent.Sign(c, key, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
					c = s
				}
			}
			consents = append(consents, c)
		}
		s := &Server{log: slog.New(slog.DiscardHandler)}
		e, err := newEnforcer(s, Enforcement{Policy: pe, ConsentKeys: keys, Now: func() time.Time { return time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC) }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.consents = consent.NewEngine(consent.SourceFunc(func(context.Context, string) ([]*fhir.Resource, error) { return consents, nil }), keys, consent.Options{})
		// Every patient is treated (no store behind this enforcer).
		e.cfg.Grants = func(context.Context, string, string) (bool, error) { return true, nil }
		p := &Principal{Subject: "dr-lee", Role: RoleClinician, Roles: []roles.Role{roles.Clinician}, FHIRUser: "Practitioner/lee"}
		rq := &enfReq{p: p, pp: policy.Principal{ID: p.Subject, Roles: p.Roles}, purpose: purpose, reasons: map[string]bool{}, bg: map[string]bool{}}
		// The treatment lookup would search the store: answer from a primed cache.
		// Described as the filter does: the fields the consents read, added on demand.
		lr := &lazyResource{res: res}
		sub, err := e.complete(context.Background(), policy.ActionRead, describe(res, 0), lr)
		if err != nil {
			return // a consent that does not compile is a load error, not a decision
		}
		e.treat.put("Practitioner/lee\x00"+sub.patient+"\x00ct", true)
		obl, deny, err := e.decide(context.Background(), rq, policy.ActionRead, sub, lr)
		if err != nil {
			return // a consent that does not compile is a load error, not a decision
		}
		if deny != nil {
			if !slices.Contains(codes, deny.Code()) {
				t.Fatalf("unexpected code %s", deny.Code())
			}
			for _, r := range deny.Issues[0].Diagnostics {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == ':' || r == ',' || r == ' ' || r == 'P' || r == 'H' || r == 'I') {
					t.Fatalf("diagnostics carry content: %q", deny.Issues[0].Diagnostics)
				}
			}
			return
		}
		if len(obl) > 0 {
			redact(res.Object, obl)
			if _, err := fhir.Marshal(res); err != nil {
				t.Fatalf("redacted resource does not marshal: %v", err)
			}
		}
	})
}
