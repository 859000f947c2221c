package policy_test

import (
	"testing"
	"time"

	"phix/access/policy"
	"phix/access/roles"
	"phix/consent"
	"phix/fhir"
	"phix/suite"
)

const benchConsent = `{"resourceType":"Consent","id":"c1","status":"active",
 "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
 "category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
 "patient":{"reference":"Patient/p1"},"dateTime":"2025-01-01T00:00:00Z",
 "provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Practitioner/dr1"}}],"provision":[
  {"type":"deny","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}],"provision":[
   {"type":"permit","code":[{"coding":[{"system":"http://loinc.org","code":"2339-0"}]}],"provision":[
    {"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}]}]},
  {"type":"deny","class":[{"code":"MedicationRequest"}]}]}}`

func benchConsents(b *testing.B) ([]*consent.Consent, consent.Request) {
	s, _ := suite.Lookup(suite.Intl)
	k, err := s.GenerateSigningKey()
	if err != nil {
		b.Fatal(err)
	}
	r, err := fhir.Parse([]byte(benchConsent), fhir.ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	signed, err := consent.Sign(r, k, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	c, err := consent.Compile(signed, consent.NewTrustedKeys(k.Public()))
	if err != nil {
		b.Fatal(err)
	}
	req := consent.Request{Patient: "Patient/p1",
		Actor:   consent.Actor{Reference: "Practitioner/dr1", Roles: []consent.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", Code: "PRCP"}}},
		Action:  "access",
		Purpose: consent.Coding{System: "http://terminology.hl7.org/CodeSystem/v3-ActReason", Code: "TREAT"},
		Resource: consent.Resource{Type: "Observation", ID: "o1", Codes: []consent.Coding{{System: "http://loinc.org", Code: "2339-0"}},
			Date: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), References: []string{"Patient/p1"}},
		Time: workday}
	return []*consent.Consent{c}, req
}

// BenchmarkConsentOnly is the peer: the consent evaluation alone.
func BenchmarkConsentOnly(b *testing.B) {
	cs, req := benchConsents(b)
	for b.Loop() {
		if d := consent.Evaluate(cs, req); d.Effect != consent.Permit {
			b.Fatal(d.Effect)
		}
	}
}

// BenchmarkDecisionWithConsent is one uncached access decision: the
// consent evaluation of a 3-deep nested consent plus the cedar policy
// decision fed with its effect (no cache anywhere).
func BenchmarkDecisionWithConsent(b *testing.B) {
	cs, req := benchConsents(b)
	e := engine(b)
	in := policy.Input{Principal: policy.Principal{ID: "dr1", Roles: []roles.Role{roles.Clinician}, Org: "hospital-a"},
		Action: "read", Resource: policy.Resource{Type: "Observation", Org: "hospital-a"}, Purpose: "TREAT",
		Treatment: policy.Treatment{CareTeam: true}, Time: workday}
	for b.Loop() {
		d := consent.Evaluate(cs, req)
		in.Consent = string(d.Effect)
		if !e.Decide(in).Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkPolicyDenyBreakGlass is the slowest policy path: a denial that
// is re-evaluated to see whether break-glass would open it (PHI-6011).
func BenchmarkPolicyDenyBreakGlass(b *testing.B) {
	e := engine(b)
	in := policy.Input{Principal: policy.Principal{ID: "dr1", Roles: []roles.Role{roles.Clinician}, Org: "hospital-a"},
		Action: "read", Resource: policy.Resource{Type: "Observation", Org: "hospital-a"}, Purpose: "TREAT", Consent: "permit", Time: workday}
	for b.Loop() {
		if e.Decide(in).Allow {
			b.Fatal("allowed")
		}
	}
}
