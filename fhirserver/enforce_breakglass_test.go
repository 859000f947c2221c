package fhirserver

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"phix/audit"
	"phix/kms"
)

func bgParams(patient, purpose, justification, code string) map[string]any {
	ps := []any{
		map[string]any{"name": "patient", "valueReference": map[string]any{"reference": patient}},
		map[string]any{"name": "purpose", "valueCode": purpose},
		map[string]any{"name": "justification", "valueString": justification},
	}
	if code != "" {
		ps = append(ps, map[string]any{"name": "totp", "valueString": code})
	}
	return map[string]any{"resourceType": "Parameters", "parameter": ps}
}

// TestBreakGlassFlow: refused access says PHI-6011; a justified, TOTP-
// verified grant opens the patient's data for ETREAT reads, raises security
// alerts, and waits in the review queue until an auditor closes it.
func TestBreakGlassFlow(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ee := newEnfEnv(t, open(t))
			ee.seedClinical(t)
			const why = "unconscious patient in the emergency room, no relatives reachable"
			if r := ee.do("GET", "/Observation/o4", nil, HeaderPurpose, "ETREAT").want(t, 403); r.errCode() != "PHI-6011" {
				t.Fatalf("before the grant: %s", r.errCode())
			}
			// Refusals: no TOTP, wrong purpose, short justification, not eligible.
			if r := ee.do("POST", "/$break-glass", bgParams("Patient/p2", "ETREAT", why, "")).want(t, 401); r.errCode() != string(CodeSecondFactor) {
				t.Fatalf("no totp: %s", r.errCode())
			}
			code := ee.enrol(t, "dr-lee")
			if r := ee.do("POST", "/$break-glass", bgParams("Patient/p2", "TREAT", why, code())).want(t, 403); r.errCode() != "PHI-6017" ||
				!strings.Contains(string(r.body), "break-glass-purpose") {
				t.Fatalf("wrong purpose: %s %s", r.errCode(), r.body)
			}
			ee.do("POST", "/$break-glass", bgParams("Patient/p2", "ETREAT", "urgent", code())).want(t, 400)
			if r := ee.as("research").do("POST", "/$break-glass", bgParams("Patient/p2", "ETREAT", why, "123456")).want(t, 403); !strings.Contains(string(r.body), "break-glass-not-eligible") {
				t.Fatalf("researcher: %s", r.body)
			}
			ee.do("POST", "/$break-glass", map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "bogus", "valueString": "x"}}}).want(t, 400)

			g := ee.do("POST", "/$break-glass", bgParams("Patient/p2", "ETREAT", why, code())).want(t, 201)
			var grant string
			for _, p := range g.obj["parameter"].([]any) {
				if m := p.(map[string]any); m["name"] == "grant" {
					grant, _ = m["valueString"].(string)
				}
			}
			if grant == "" {
				t.Fatalf("no grant id: %s", g.body)
			}
			rid := ee.do("GET", "/Observation/o4", nil, HeaderPurpose, "ETREAT").want(t, 200).header.Get("X-Request-Id")
			if n := ee.do("GET", "/Observation?patient=p2", nil, HeaderPurpose, "ETREAT").want(t, 200).total(); n != 2 {
				t.Fatalf("search under break-glass: %d", n)
			}
			// Only under the emergency purpose, only for that patient, only for lee.
			ee.do("GET", "/Observation/o4", nil).want(t, 403)
			ee.as("kim").do("GET", "/Observation/o1", nil, HeaderPurpose, "ETREAT").want(t, 403)
			if _, err := ee.waitEvent(t, func(e audit.Event) bool {
				return e.Action == audit.ActionSecurityAlert && e.Alert == audit.AlertBreakGlass && e.RequestID == rid
			}); err != nil {
				t.Fatal("no break-glass alert for the read")
			}
			if _, err := ee.waitEvent(t, func(e audit.Event) bool {
				return e.Action == audit.ActionRead && e.RequestID == rid && e.Why != nil && e.Why.Purpose == "ETREAT" &&
					e.Decision != nil && strings.Contains(strings.Join(e.Decision.Policies, ","), "break-glass-access")
			}); err != nil {
				t.Fatal("the read's event does not name break-glass-access")
			}
			// The justification is in the queue, never in the audit log.
			for _, ev := range ee.events(t) {
				b, _ := json.Marshal(ev)
				if strings.Contains(string(b), "unconscious") {
					t.Fatal("justification in the audit log")
				}
			}
			// Review queue: auditors only; lee may not review.
			if r := ee.do("GET", "/$break-glass-review", nil); r.status != 403 {
				t.Fatalf("clinician lists the queue: %d", r.status)
			}
			aud := ee.as("auditor")
			q := aud.do("GET", "/$break-glass-review", nil).want(t, 200)
			if !strings.Contains(string(q.body), grant) || !strings.Contains(string(q.body), "unconscious") {
				t.Fatalf("queue: %s", q.body)
			}
			closeReq := func(outcome string) map[string]any {
				return map[string]any{"resourceType": "Parameters", "parameter": []any{
					map[string]any{"name": "grant", "valueString": grant}, map[string]any{"name": "outcome", "valueCode": outcome}}}
			}
			aud.do("POST", "/$break-glass-review", closeReq("maybe")).want(t, 400)
			aud.do("POST", "/$break-glass-review", closeReq("appropriate")).want(t, 200)
			aud.do("POST", "/$break-glass-review", closeReq("appropriate")).want(t, 409)
			if q := aud.do("GET", "/$break-glass-review", nil).want(t, 200); strings.Contains(string(q.body), grant) {
				t.Fatal("closed grant still queued")
			}
			// The auditor still reads no clinical data.
			aud.do("GET", "/Observation/o1", nil).want(t, 403)
			// The grant ends by time.
			ee.totpNow = ee.totpNow.Add(61 * time.Minute)
			ee.do("GET", "/Observation/o4", nil, HeaderPurpose, "ETREAT").want(t, 403)
		})
	}
}

// TestEraseNeedsSecondFactor: with enforcement's second factor, $erase
// refuses a caller without a valid TOTP code before looking at approvals.
func TestEraseNeedsSecondFactor(t *testing.T) {
	alice, bob := testCustodians(t)
	ee := newEnfEnvCfg(t, openSQLite(t), func(c *Config) { c.Eraser = kmsEraser{m: protKMS, hospital: testHospital} })
	ee.do("PUT", "/Patient/pe", map[string]any{"resourceType": "Patient", "id": "pe"}).want(t, 201)
	keyID, _ := kms.DataKeyID(testHospital, kms.KindPatient, "pe")
	approval := func(c custodianKey) map[string]any {
		a, err := kms.SignApproval(c.sk, c.id, kms.OpDestroyDataKey, keyID, 0, "", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(a)
		return map[string]any{"name": "approval", "valueString": string(b)}
	}
	body := map[string]any{"resourceType": "Parameters", "parameter": []any{approval(alice), approval(bob)}}
	if r := ee.do("POST", "/Patient/pe/$erase", body).want(t, 401); r.errCode() != string(CodeSecondFactor) {
		t.Fatalf("erase without totp: %s", r.errCode())
	}
	code := ee.enrol(t, "dr-lee")
	ee.do("POST", "/Patient/pe/$erase", body, HeaderTOTP, "999999").want(t, 401)
	ee.do("POST", "/Patient/pe/$erase", body, HeaderTOTP, code()).want(t, 200)
	ee.do("GET", "/Patient/pe", nil).want(t, 410)
}
