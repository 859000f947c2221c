package consent

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"phix/fhir"
	"phix/suite"
)

var (
	keysOnce sync.Once
	intlKey  suite.SigningKey
	gmKey    suite.SigningKey
	otherKey suite.SigningKey
)

func testKeys(t testing.TB) (intl, gm, other suite.SigningKey) {
	t.Helper()
	keysOnce.Do(func() {
		is, _ := suite.Lookup(suite.Intl)
		gs, _ := suite.Lookup(suite.GM)
		intlKey, _ = is.GenerateSigningKey()
		gmKey, _ = gs.GenerateSigningKey()
		otherKey, _ = is.GenerateSigningKey()
	})
	if intlKey == nil || gmKey == nil || otherKey == nil {
		t.Fatal("key generation failed")
	}
	return intlKey, gmKey, otherKey
}

func trusted(t testing.TB) *TrustedKeys {
	i, g, _ := testKeys(t)
	return NewTrustedKeys(i.Public(), g.Public())
}

func parse(t testing.TB, js string) *fhir.Resource {
	t.Helper()
	r, err := fhir.Parse([]byte(js), fhir.ParseOptions{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return r
}

func readFile(t testing.TB, name string) *fhir.Resource {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, string(b))
}

// consentJSON builds an active consent of Patient/p1 around a provision.
func consentJSON(id, provision string) string {
	return `{"resourceType":"Consent","id":"` + id + `","status":"active",
	"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
	"patient":{"reference":"Patient/p1"},"dateTime":"2025-01-01T00:00:00Z","provision":` + provision + `}`
}

func signed(t testing.TB, r *fhir.Resource, key suite.SigningKey) *fhir.Resource {
	t.Helper()
	s, err := Sign(r, key, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func compileSigned(t testing.TB, id, provision string) *Consent {
	t.Helper()
	i, _, _ := testKeys(t)
	c, err := Compile(signed(t, parse(t, consentJSON(id, provision)), i), trusted(t))
	if err != nil {
		t.Fatalf("compile %s: %v", id, err)
	}
	if !c.Verified {
		t.Fatalf("%s does not verify: %s", id, c.SigReason)
	}
	return c
}

var when = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func baseReq() Request {
	return Request{
		Patient: "Patient/p1",
		Actor: Actor{Reference: "Practitioner/dr1", Roles: []Coding{
			{System: "http://terminology.hl7.org/CodeSystem/v3-RoleCode", Code: "PRCP"}}},
		Action:  "access",
		Purpose: Coding{System: "http://terminology.hl7.org/CodeSystem/v3-ActReason", Code: "TREAT"},
		Resource: Resource{Type: "Observation", ID: "o1",
			Codes:      []Coding{{System: "http://loinc.org", Code: "2339-0"}},
			Date:       time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
			References: []string{"Patient/p1", "Encounter/e1"},
		},
		Time: when,
	}
}

// memSource is a mutable consent store for engine tests.
type memSource struct {
	mu    sync.Mutex
	byPat map[string][]*fhir.Resource
	loads int
}

func (m *memSource) Consents(_ context.Context, patient string) ([]*fhir.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	return m.byPat[patient], nil
}

func (m *memSource) set(patient string, rs ...*fhir.Resource) {
	m.mu.Lock()
	m.byPat[patient] = rs
	m.mu.Unlock()
}

func noPHI(t *testing.T, d Decision, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(d.Reason, s) {
			t.Errorf("reason carries %q", s)
		}
	}
}
