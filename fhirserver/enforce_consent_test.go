package fhirserver

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"phix/audit"
	"phix/consent"
	"phix/fhir"
)

// TestEnforceConsentDeny: a patient's signed deny for one practitioner
// hides the patient's data from that practitioner on read (403 PHI-6002)
// and search (the total excludes it), while a colleague still sees it.
func TestEnforceConsentDeny(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ee := newEnfEnv(t, open(t))
			ee.seedClinical(t)
			key, _ := consentKeys(t)
			ee.do("PUT", "/Consent/c1", signedConsent(t, key, "c1", "p1", actorProvision("deny", "Practitioner/lee", ""))).want(t, 201)
			if r := ee.do("GET", "/Observation/o1", nil).want(t, 403); r.errCode() != "PHI-6002" || !strings.Contains(string(r.body), "consent-denied") {
				t.Fatalf("read under consent deny: %s %s", r.errCode(), r.body)
			}
			if r := ee.do("GET", "/Observation", nil).want(t, 200); r.total() != 0 {
				t.Fatalf("search under consent deny: total %d", r.total())
			}
			if r := ee.as("kim").do("GET", "/Observation", nil).want(t, 200); r.total() != 6 {
				t.Fatalf("kim: total %d", r.total())
			}
		})
	}
}

// TestEnforceNestedProvisions: root permit for the practitioner, an
// exception denying Observations, and inside it an exception permitting
// heart rate (LOINC 8867-4) again.
func TestEnforceNestedProvisions(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t))
	ee.seedClinical(t)
	key, _ := consentKeys(t)
	nested := `,"provision":[{"type":"deny","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}],
		"provision":[{"type":"permit","code":[{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}]}]}]`
	ee.do("PUT", "/Consent/c1", signedConsent(t, key, "c1", "p1", actorProvision("permit", "Practitioner/lee", nested))).want(t, 201)
	ee.do("GET", "/Patient/p1", nil).want(t, 200)
	ee.do("GET", "/Observation/o1", nil).want(t, 200)
	if r := ee.do("GET", "/Observation/o2", nil).want(t, 403); r.errCode() != "PHI-6002" {
		t.Fatalf("nested deny: %s", r.errCode())
	}
	s := ee.do("GET", "/Observation?patient=p1", nil).want(t, 200)
	if ids := s.ids("match"); s.total() != 1 || !slices.Equal(ids, []string{"o1"}) {
		t.Fatalf("nested search: %d %v", s.total(), ids)
	}
}

// TestEnforceConsentSignatures: a Consent with a bad signature is refused
// on write (401 PHI-6004, and the writer is locked out); a stored consent
// whose key is no longer trusted is ignored, audited, and answers PHI-6004
// where it was the only basis.
func TestEnforceConsentSignatures(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t))
	ee.seedClinical(t)
	key, rogue := consentKeys(t)
	forged := signedConsent(t, rogue, "cf", "p1", actorProvision("permit", "Practitioner/kim", ""))
	if r := ee.as("kim").do("PUT", "/Consent/cf", forged).want(t, 401); r.errCode() != "PHI-6004" {
		t.Fatalf("forged consent: %s", r.errCode())
	}
	// Seed 002: 900 s lockout after PHI-6004.
	if r := ee.as("kim").do("GET", "/Patient/p1", nil); r.status == 200 {
		t.Fatal("forger not locked out")
	}
	tampered := signedConsent(t, key, "ct", "p1", actorProvision("deny", "Practitioner/lee", ""))
	tampered["status"] = "active"
	prov := tampered["provision"].(map[string]any)
	prov["type"] = "permit" // changed after signing
	if r := ee.do("PUT", "/Consent/ct", tampered).want(t, 401); r.errCode() != "PHI-6004" {
		t.Fatalf("tampered consent: %s", r.errCode())
	}
	// A valid deny, then the key is revoked: the consent no longer counts,
	// and since it was the only basis the read answers PHI-6004.
	ee2 := newEnfEnv(t, openSQLite(t))
	ee2.seedClinical(t)
	ee2.do("PUT", "/Consent/c1", signedConsent(t, key, "c1", "p1", actorProvision("deny", "Practitioner/lee", ""))).want(t, 201)
	ee2.do("GET", "/Observation/o1", nil).want(t, 403)
	ee2.keys.Remove(key.Public().KeyID())
	ee2.srv.enf.forgetPatient("p1", true, false) // what a key revocation does for every patient
	if r := ee2.do("GET", "/Observation/o1", nil).want(t, 401); r.errCode() != "PHI-6004" {
		t.Fatalf("revoked key: %s", r.errCode())
	}
	// The reader is not locked out by someone else's consent.
	ee2.do("GET", "/Patient/p2", nil).want(t, 200)
	if _, err := ee2.waitEvent(t, func(e audit.Event) bool {
		return e.Action == audit.ActionConsent && e.Decision != nil && slices.Contains(e.Decision.Policies, "consent-ignored:PHI-6004")
	}); err != nil {
		t.Fatal("ignored consent not audited")
	}
}

// TestEnforceConsentConflict: a permit and a deny of equal specificity in
// two consents are a conflict: refused with PHI-6016.
func TestEnforceConsentConflict(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t))
	ee.seedClinical(t)
	key, _ := consentKeys(t)
	ee.do("PUT", "/Consent/c1", signedConsent(t, key, "c1", "p1", actorProvision("permit", "Practitioner/lee", ""))).want(t, 201)
	ee.do("PUT", "/Consent/c2", signedConsent(t, key, "c2", "p1", actorProvision("deny", "Practitioner/lee", ""))).want(t, 201)
	if r := ee.do("GET", "/Observation/o1", nil); r.status != 409 || r.errCode() != "PHI-6016" {
		t.Fatalf("conflict: %d %s", r.status, r.errCode())
	}
}

// TestEnforceOptIn: with ConsentRequired, no consent is PHI-6001 and an
// expired one PHI-6003; a permitting consent opens the data, and its
// withdrawal (a consent override: TOTP) takes effect at once, with the
// cache's clock standing still (within the same second).
func TestEnforceOptIn(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t), func(e *Enforcement) { e.ConsentRequired = true })
	ee.seedClinical(t)
	key, _ := consentKeys(t)
	if r := ee.do("GET", "/Observation/o1", nil).want(t, 403); r.errCode() != "PHI-6001" {
		t.Fatalf("no consent: %s", r.errCode())
	}
	expired := actorProvision("permit", "Practitioner/lee", `,"period":{"start":"2025-01-01T00:00:00Z","end":"2026-05-31T23:00:00Z"}`)
	ee.do("PUT", "/Consent/cx", signedConsent(t, key, "cx", "p1", expired)).want(t, 201)
	if r := ee.do("GET", "/Observation/o1", nil).want(t, 403); r.errCode() != "PHI-6003" {
		t.Fatalf("expired consent: %s", r.errCode())
	}
	ee.do("PUT", "/Consent/c1", signedConsent(t, key, "c1", "p2", actorProvision("permit", "Practitioner/kim", ""))).want(t, 201)
	kim := ee.as("kim")
	kim.do("GET", "/Observation/o4", nil).want(t, 200)
	if n := kim.do("GET", "/Observation", nil).want(t, 200).total(); n != 2 {
		t.Fatalf("kim sees %d under opt-in (p2 only)", n)
	}
	// Withdrawal: the patient's portal re-signs the consent as inactive;
	// changing a recorded consent is an override: the writer's TOTP.
	withdrawn := signedConsent(t, key, "c1", "p2", actorProvision("permit", "Practitioner/kim", ""))
	withdrawn["status"] = "inactive"
	withdrawnRes, _ := fhir.Parse(mustJSON(withdrawn), fhir.ParseOptions{})
	resigned, err := consent.Sign(withdrawnRes, key, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if r := kim.do("PUT", "/Consent/c1", resigned.Object).want(t, 401); r.errCode() != string(CodeSecondFactor) {
		t.Fatalf("override without TOTP: %s", r.errCode())
	}
	code := ee.enrol(t, "dr-kim")
	if r := kim.do("PUT", "/Consent/c1", resigned.Object, HeaderTOTP, "000000"); r.status != 401 {
		t.Fatalf("override with a wrong code: %d", r.status)
	}
	// Deleting is not a clinician's right under the default policy.
	if r := kim.do("DELETE", "/Consent/c1", nil).want(t, 403); r.errCode() != "PHI-6017" {
		t.Fatalf("delete consent: %s", r.errCode())
	}
	before := ee.clock.Now()
	kim.do("PUT", "/Consent/c1", resigned.Object, HeaderTOTP, code()).want(t, 200)
	if r := kim.do("GET", "/Observation/o4", nil).want(t, 403); r.errCode() != "PHI-6001" {
		t.Fatalf("after withdrawal: %s", r.errCode())
	}
	if n := kim.do("GET", "/Observation", nil).want(t, 200).total(); n != 0 {
		t.Fatalf("after withdrawal kim sees %d", n)
	}
	if !ee.clock.Now().Equal(before) {
		t.Fatal("the cache clock moved")
	}
}

// TestEnforceRedaction: a permit with a deny exception on a security label
// releases the resource without its inline-labelled elements.
func TestEnforceRedaction(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t))
	ee.seedClinical(t)
	key, _ := consentKeys(t)
	obs := observation("o9", "p1", "laboratory", "5671-3")
	obs["note"] = []any{
		map[string]any{"text": "routine"},
		map[string]any{"text": "hiv-related remark", "extension": []any{map[string]any{"url": inlineLabelURL,
			"valueCoding": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}}}},
	}
	ee.do("PUT", "/Observation/o9", obs).want(t, 201)
	exc := `,"provision":[{"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}]`
	ee.do("PUT", "/Consent/c1", signedConsent(t, key, "c1", "p1", actorProvision("permit", "Practitioner/lee", exc))).want(t, 201)
	r := ee.do("GET", "/Observation/o9", nil).want(t, 200)
	if strings.Contains(string(r.body), "hiv-related") || !strings.Contains(string(r.body), "routine") {
		t.Fatalf("redaction: %s", r.body)
	}
	s := ee.do("GET", "/Observation?_id=o9", nil).want(t, 200)
	if strings.Contains(string(s.body), "hiv-related") {
		t.Fatal("search result not redacted")
	}
}

// TestConsentStatusSeed: $consent-status answers exactly seed 002's
// response for seed 002's consent, and refuses bad parameters.
func TestConsentStatusSeed(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ee := newEnfEnv(t, open(t))
			key, _ := consentKeys(t)
			raw, err := os.ReadFile("../consent/testdata/seed002-consent.json")
			if err != nil {
				t.Fatal(err)
			}
			res, err := fhir.Parse(raw, fhir.ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			signed, err := consent.Sign(res, key, time.Date(2025, 12, 24, 10, 0, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			ee.do("PUT", "/Patient/patient-12345", map[string]any{"resourceType": "Patient", "id": "patient-12345"}).want(t, 201)
			ee.do("PUT", "/CareTeam/ct", careTeam("ct", "patient-12345", "Practitioner/lee")).want(t, 201)
			ee.do("PUT", "/Consent/consent-12345", signed.Object).want(t, 201)
			req, _ := os.ReadFile("../consent/testdata/seed002-status-request.json")
			want, _ := os.ReadFile("../consent/testdata/seed002-status-granted.json")
			r := ee.do("POST", "/Patient/patient-12345/$consent-status", req).want(t, 200)
			var got, exp any
			_ = json.Unmarshal(r.body, &got)
			_ = json.Unmarshal(want, &exp)
			gb, _ := json.Marshal(got)
			eb, _ := json.Marshal(exp)
			if string(gb) != string(eb) {
				t.Fatalf("$consent-status:\n got %s\nwant %s", gb, eb)
			}
			if r := ee.do("POST", "/Patient/patient-12345/$consent-status", `{"resourceType":"Parameters","parameter":[{"name":"action","valueCode":"fly"}]}`); r.status != 400 {
				t.Fatalf("bad parameters: %d", r.status)
			}
			if r := ee.do("POST", "/Patient/nobody/$consent-status", req); r.errCode() != "PHI-6015" {
				t.Fatalf("unknown patient: %s", r.errCode())
			}
			// Without a treatment relationship (kim) the consent data is not hers.
			if r := ee.as("kim").do("POST", "/Patient/patient-12345/$consent-status", req); r.status != 403 {
				t.Fatalf("kim: %d", r.status)
			}
		})
	}
}

// TestEnforceChainsMatchVisibleOnly: chained and _has parameters match
// only resources the caller may see, so a search cannot reveal that a
// hidden resource exists or what it holds.
func TestEnforceChainsMatchVisibleOnly(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ee := newEnfEnv(t, open(t))
			ee.seedClinical(t)
			key, _ := consentKeys(t)
			// lee: Observations of p1 hidden except heart rate (8867-4).
			nested := `,"provision":[{"type":"deny","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}],
				"provision":[{"type":"permit","code":[{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}]}]}]`
			ee.do("PUT", "/Consent/c1", signedConsent(t, key, "c1", "p1", actorProvision("permit", "Practitioner/lee", nested))).want(t, 201)
			for _, c := range []struct {
				who, query string
				want       []string
			}{
				// o2 (8310-5) is hidden from lee: p1 must not match through it.
				{"lee", "/Patient?_has:Observation:patient:code=8310-5", nil},
				{"lee", "/Patient?_has:Observation:patient:code=8867-4", []string{"p1"}}, // o4 is p2's: not lee's patient
				{"kim", "/Patient?_has:Observation:patient:code=8310-5", []string{"p1"}},
				{"kim", "/Patient?_has:Observation:patient:code=8867-4", []string{"p1", "p2"}},
				// Nested: Patients with an Observation that a CareTeam's patient also has.
				{"lee", "/Observation?subject._has:CareTeam:patient:status=active", []string{"o1"}},
				{"kim", "/Observation?subject:Patient._has:Observation:patient:code=8310-5&code=8867-4", []string{"o1"}},
			} {
				r := ee.as(c.who).do("GET", c.query, nil)
				if r.status != 200 {
					t.Fatalf("%s %s: %d %s\n%s", c.who, c.query, r.status, r.body, ee.logs.String())
				}
				got := r.ids("match")
				slices.Sort(got)
				if r.total() != len(c.want) || !slices.Equal(got, c.want) {
					t.Errorf("%s %s: total %d, ids %v; want %v", c.who, c.query, r.total(), got, c.want)
				}
			}

			// A forward chain into a hidden Patient: lee may see o1 but,
			// under a second consent, not the Patient resource itself.
			hidePatient := `,"provision":[{"type":"deny","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Patient"}]}]`
			ee.do("PUT", "/Consent/c2", signedConsent(t, key, "c2", "p1", actorProvision("permit", "Practitioner/lee", hidePatient))).want(t, 201)
			ee.do("GET", "/Patient/p1", nil).want(t, 403)
			ee.do("GET", "/Observation/o1", nil).want(t, 200)
			if r := ee.do("GET", "/Observation?subject:Patient.active=true", nil).want(t, 200); r.total() != 0 {
				t.Errorf("forward chain through a hidden Patient matched %v", r.ids("match"))
			}
			if r := ee.as("kim").do("GET", "/Observation?subject:Patient.active=true&code=8867-4", nil).want(t, 200); r.total() != 2 {
				t.Errorf("kim: forward chain total %d", r.total())
			}
		})
	}
}
