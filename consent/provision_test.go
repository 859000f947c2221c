package consent

import (
	"testing"
	"time"
)

const actorDr1 = `{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Practitioner/dr1"}}`

// nested3 is permit for dr1 / except deny Observations / except permit
// LOINC 2339-0 / except deny restricted (R) ones.
const nested3 = `{"type":"permit","actor":[` + actorDr1 + `],"provision":[
 {"type":"deny","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}],"provision":[
   {"type":"permit","code":[{"coding":[{"system":"http://loinc.org","code":"2339-0"}]}],"provision":[
     {"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}]}]},
 {"type":"deny","class":[{"code":"MedicationRequest"}]}]}`

func TestProvisions(t *testing.T) {
	tests := []struct {
		name      string
		provision string
		mod       func(r *Request)
		effect    Effect
		path      string
	}{
		{"root permit", `{"type":"permit"}`, nil, Permit, "provision"},
		{"root deny", `{"type":"deny"}`, nil, Deny, "provision"},
		{"nested depth 1 deny", nested3, func(r *Request) { r.Resource.Codes = nil }, Deny, "provision.provision[0]"},
		{"nested depth 2 permit", nested3, nil, Permit, "provision.provision[0].provision[0]"},
		{"nested depth 3 deny by label (high-water N<=R)", nested3, func(r *Request) {
			r.Resource.SecurityLabels = []Coding{{System: confidentialitySystem, Code: "N"}}
		}, Deny, "provision.provision[0].provision[0].provision[0]"},
		{"nested depth 3 label V above R", nested3, func(r *Request) {
			r.Resource.SecurityLabels = []Coding{{System: confidentialitySystem, Code: "V"}}
		}, Permit, "provision.provision[0].provision[0]"},
		{"nested sibling", nested3, func(r *Request) { r.Resource.Type = "MedicationRequest" }, Deny, "provision.provision[1]"},
		{"nested other class stays root", nested3, func(r *Request) { r.Resource.Type = "Condition" }, Permit, "provision"},
		{"root actor mismatch", nested3, func(r *Request) { r.Actor.Reference = "Practitioner/dr2" }, NotApplicable, ""},
		{"untyped nested is opposite of parent", `{"type":"permit","provision":[{"class":[{"code":"Observation"}]}]}`, nil, Deny, "provision.provision[0]"},
		{"policyRule OPTOUT root", `{"provision":[{"type":"permit","actor":[` + actorDr1 + `]}]}`, nil, Permit, "provision.provision[0]"},
		{"period current", `{"type":"permit","period":{"start":"2026-01-01","end":"2026-12-31"}}`, nil, Permit, "provision"},
		{"period past (expired)", `{"type":"permit","period":{"start":"2025-01-01","end":"2025-12-31"}}`, nil, NotApplicable, ""},
		{"period future", `{"type":"permit","period":{"start":"2027-01-01"}}`, nil, NotApplicable, ""},
		{"actor by role only", `{"type":"permit","actor":[{"role":{"coding":[{"code":"PRCP"}]}}]}`, nil, Permit, "provision"},
		{"actor role missing", `{"type":"permit","actor":[{"role":{"coding":[{"code":"ONESELF"}]}}]}`, nil, NotApplicable, ""},
		{"action match", `{"type":"permit","action":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentaction","code":"access"}]}]}`, nil, Permit, "provision"},
		{"action mismatch", `{"type":"permit","action":[{"coding":[{"code":"disclose"}]}]}`, nil, NotApplicable, ""},
		{"purpose match", `{"type":"permit","purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}`, nil, Permit, "provision"},
		{"purpose mismatch", `{"type":"permit","purpose":[{"code":"HRESCH"}]}`, nil, NotApplicable, ""},
		{"class by profile", `{"type":"permit","class":[{"system":"http://hl7.org/fhir/StructureDefinition","code":"http://example.org/p"}]}`, func(r *Request) {
			r.Resource.Profiles = []string{"http://example.org/p"}
		}, Permit, "provision"},
		{"code mismatch", `{"type":"permit","code":[{"coding":[{"system":"http://loinc.org","code":"0000-0"}]}]}`, nil, NotApplicable, ""},
		{"label exact (non-confidentiality)", `{"type":"permit","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}`, func(r *Request) {
			r.Resource.SecurityLabels = []Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "HIV"}}
		}, Permit, "provision"},
		{"dataPeriod in", `{"type":"permit","dataPeriod":{"start":"2025-01-01","end":"2025-12-31"}}`, nil, Permit, "provision"},
		{"dataPeriod out", `{"type":"permit","dataPeriod":{"start":"2024-01-01","end":"2024-12-31"}}`, nil, NotApplicable, ""},
		{"dataPeriod unknown date fails permit", `{"type":"permit","dataPeriod":{"start":"2025-01-01"}}`, func(r *Request) { r.Resource.Date = time.Time{} }, NotApplicable, ""},
		{"dataPeriod unknown date matches deny", `{"type":"deny","dataPeriod":{"start":"2025-01-01"}}`, func(r *Request) { r.Resource.Date = time.Time{} }, Deny, "provision"},
		{"data instance", `{"type":"permit","data":[{"meaning":"instance","reference":{"reference":"Observation/o1"}}]}`, nil, Permit, "provision"},
		{"data instance other", `{"type":"permit","data":[{"meaning":"instance","reference":{"reference":"Observation/o2"}}]}`, nil, NotApplicable, ""},
		{"data dependents (refers to it)", `{"type":"permit","data":[{"meaning":"dependents","reference":{"reference":"Encounter/e1"}}]}`, nil, Permit, "provision"},
		{"data related (it refers to us)", `{"type":"permit","data":[{"meaning":"related","reference":{"reference":"DiagnosticReport/d1"}}]}`, func(r *Request) {
			r.Resource.ReferencedBy = []string{"DiagnosticReport/d1"}
		}, Permit, "provision"},
		{"data related not referenced", `{"type":"permit","data":[{"meaning":"related","reference":{"reference":"DiagnosticReport/d1"}}]}`, nil, NotApplicable, ""},
		{"data authoredby", `{"type":"permit","data":[{"meaning":"authoredby","reference":{"reference":"Practitioner/dr9"}}]}`, func(r *Request) {
			r.Resource.Authors = []string{"Practitioner/dr9"}
		}, Permit, "provision"},
		{"data seed compartment wildcard", `{"type":"permit","data":[{"meaning":"related","reference":{"reference":"Patient/p1/*"}}]}`, nil, Permit, "provision"},
		{"data absolute reference", `{"type":"permit","data":[{"meaning":"instance","reference":{"reference":"https://h.example/fhir/Observation/o1/_history/3"}}]}`, nil, Permit, "provision"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			js := consentJSON("c1", tc.provision)
			if tc.name == "policyRule OPTOUT root" {
				js = js[:len(js)-1] + `,"policyRule":{"coding":[{"code":"OPTOUT"}]}}`
			}
			i, _, _ := testKeys(t)
			c, err := Compile(signed(t, parse(t, js), i), trusted(t))
			if err != nil {
				t.Fatal(err)
			}
			req := baseReq()
			if tc.mod != nil {
				tc.mod(&req)
			}
			d := Evaluate([]*Consent{c}, req)
			if d.Effect != tc.effect || d.ProvisionPath != tc.path {
				t.Fatalf("got %s %q (%s), want %s %q", d.Effect, d.ProvisionPath, d.Reason, tc.effect, tc.path)
			}
			want := map[Effect]Code{Permit: CodeNone, Deny: CodeDenied, NotApplicable: CodeRequired}[tc.effect]
			if tc.name == "period past (expired)" {
				want = CodeExpired
			}
			if d.Code != want {
				t.Errorf("code %s, want %s", d.Code, want)
			}
			noPHI(t, d, "dr1", "p1", "o1", "2339")
		})
	}
}

func TestObligations(t *testing.T) {
	c := compileSigned(t, "c1", `{"type":"permit","provision":[{"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}]}`)
	d := Evaluate([]*Consent{c}, baseReq())
	if d.Effect != Permit || len(d.Obligations) != 1 || d.Obligations[0].Kind != "redact" || d.Obligations[0].SecurityLabel.Code != "PSY" {
		t.Fatalf("got %+v", d)
	}
}

func TestCompileRefuses(t *testing.T) {
	deep := `{"type":"permit"}`
	for range MaxProvisionDepth {
		deep = `{"type":"deny","provision":[` + deep + `]}`
	}
	for name, js := range map[string]string{
		"bad type":    consentJSON("c", `{"type":"maybe"}`),
		"bad meaning": consentJSON("c", `{"type":"permit","data":[{"meaning":"all","reference":{"reference":"Patient/p1"}}]}`),
		"no patient":  `{"resourceType":"Consent","id":"c","status":"active"}`,
		"no id":       `{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/p1"}}`,
		"bad period":  consentJSON("c", `{"type":"permit","period":{"start":"2026-02-01","end":"2026-01-01"}}`),
		"bad date":    consentJSON("c", `{"type":"permit","period":{"start":"yesterday"}}`),
		"too deep":    consentJSON("c", deep),
		"empty actor": consentJSON("c", `{"type":"permit","actor":[{}]}`),
		"not consent": `{"resourceType":"Patient","id":"x"}`,
	} {
		if _, err := Compile(parse(t, js), nil); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
}

func TestStatusAndDateTime(t *testing.T) {
	for _, status := range []string{"draft", "proposed", "rejected", "inactive", "entered-in-error"} {
		i, _, _ := testKeys(t)
		js := consentJSON("c1", `{"type":"permit"}`)
		r := parse(t, js)
		r.Object["status"] = status
		c, err := Compile(signed(t, r, i), trusted(t))
		if err != nil {
			t.Fatal(err)
		}
		if d := Evaluate([]*Consent{c}, baseReq()); d.Effect != NotApplicable {
			t.Errorf("status %s applied", status)
		}
	}
	i, _, _ := testKeys(t)
	r := parse(t, consentJSON("c1", `{"type":"permit"}`))
	r.Object["dateTime"] = "2030-01-01T00:00:00Z"
	c, _ := Compile(signed(t, r, i), trusted(t))
	if d := Evaluate([]*Consent{c}, baseReq()); d.Effect != NotApplicable {
		t.Errorf("future consent applied")
	}
}

func TestMultipleConsents(t *testing.T) {
	permitAll := compileSigned(t, "permit-all", `{"type":"permit"}`)
	permitDr1 := compileSigned(t, "permit-dr1", `{"type":"permit","actor":[`+actorDr1+`]}`)
	denyDr1 := compileSigned(t, "deny-dr1", `{"type":"deny","actor":[`+actorDr1+`]}`)
	denyObs := compileSigned(t, "deny-obs", `{"type":"deny","actor":[`+actorDr1+`],"class":[{"code":"Observation"}]}`)
	other := compileSigned(t, "deny-dr2", `{"type":"deny","actor":[{"role":{"coding":[{"code":"X"}]},"reference":{"reference":"Practitioner/dr2"}}]}`)
	tests := []struct {
		name      string
		consents  []*Consent
		effect    Effect
		code      Code
		id        string
		conflicts int
	}{
		{"single permit", []*Consent{permitDr1}, Permit, CodeNone, "permit-dr1", 0},
		{"unrelated deny", []*Consent{permitDr1, other}, Permit, CodeNone, "permit-dr1", 0},
		{"deny overrides wider permit", []*Consent{permitAll, denyObs}, Deny, CodeDenied, "deny-obs", 0},
		{"more specific deny over permit", []*Consent{permitDr1, denyObs}, Deny, CodeDenied, "deny-obs", 0},
		{"equal specificity conflict", []*Consent{permitDr1, denyDr1}, Deny, CodeConflict, "deny-dr1", 1},
		{"none", nil, NotApplicable, CodeRequired, "", 0},
	}
	for _, tc := range tests {
		d := Evaluate(tc.consents, baseReq())
		if d.Effect != tc.effect || d.Code != tc.code || d.ConsentID != tc.id || len(d.Conflicts) != tc.conflicts {
			t.Errorf("%s: got %s %s %s %v", tc.name, d.Effect, d.Code, d.ConsentID, d.Conflicts)
		}
	}
}

func TestExpired(t *testing.T) {
	c := compileSigned(t, "old", `{"type":"permit","period":{"start":"2025-01-01T00:00:00Z","end":"2026-01-01T00:00:00Z"}}`)
	d := Evaluate([]*Consent{c}, baseReq())
	if d.Effect != NotApplicable || d.Code != CodeExpired || d.ConsentID != "old" {
		t.Fatalf("got %+v", d)
	}
}
