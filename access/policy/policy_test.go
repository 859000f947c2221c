package policy_test

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"phix/access/policy"
	"phix/access/roles"
	"phix/errcode"
)

// A weekday at 10:00 UTC.
var workday = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func engine(t testing.TB) *policy.Engine {
	t.Helper()
	e, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	e.Location = time.UTC
	return e
}

func in(role roles.Role, action, typ, purpose string, mod ...func(*policy.Input)) policy.Input {
	i := policy.Input{Principal: policy.Principal{ID: "u1", Roles: []roles.Role{role}, Org: "hospital-a"},
		Action: action, Resource: policy.Resource{Type: typ, Org: "hospital-a"}, Purpose: purpose,
		Treatment: policy.Treatment{CareTeam: true}, Consent: "permit", Time: workday}
	for _, m := range mod {
		m(&i)
	}
	return i
}

func TestDefaultPolicy(t *testing.T) {
	e := engine(t)
	noTreatment := func(i *policy.Input) { i.Treatment = policy.Treatment{} }
	cases := []struct {
		name    string
		in      policy.Input
		allow   bool
		reasons []string
		code    errcode.Code
	}{
		{"clinician reads with care-team relationship", in(roles.Clinician, "read", "Observation", "TREAT"), true, []string{"clinician-treatment"}, ""},
		{"clinician via encounter", in(roles.Clinician, "read", "Observation", "TREAT", func(i *policy.Input) { i.Treatment = policy.Treatment{EncounterParticipant: true} }), true, []string{"clinician-treatment"}, ""},
		{"clinician via explicit grant", in(roles.Clinician, "update", "Observation", "TREAT", func(i *policy.Input) { i.Treatment = policy.Treatment{ExplicitGrant: true} }), true, []string{"clinician-treatment"}, ""},
		{"clinician without relationship: break-glass would help", in(roles.Clinician, "read", "Observation", "TREAT", noTreatment), false, []string{"treatment-relationship-required", "break-glass-available"}, errcode.BreakGlassRequired},
		{"clinician with break-glass", in(roles.Clinician, "read", "Observation", "ETREAT", noTreatment, func(i *policy.Input) { i.BreakGlass = true }), true, []string{"break-glass-access"}, ""},
		{"break-glass needs ETREAT/BTG purpose", in(roles.Clinician, "read", "Observation", "TREAT", noTreatment, func(i *policy.Input) { i.BreakGlass = true }), true, []string{"clinician-treatment"}, ""},
		{"consent denied", in(roles.Clinician, "read", "Observation", "TREAT", func(i *policy.Input) { i.Consent = "deny" }), false, []string{"consent-denied", "break-glass-available"}, errcode.BreakGlassRequired},
		{"consent denied, break-glass overrides", in(roles.Clinician, "read", "Observation", "BTG", func(i *policy.Input) { i.Consent = "deny"; i.BreakGlass = true }), true, []string{"break-glass-access"}, ""},
		{"other organisation", in(roles.Clinician, "read", "Observation", "TREAT", func(i *policy.Input) { i.Resource.Org = "hospital-b" }), false, []string{"other-organisation"}, errcode.ProviderNotAuthorized},
		{"nurse reads", in(roles.Nurse, "search", "Condition", "TREAT"), true, []string{"nurse-treatment-read"}, ""},
		{"nurse records observation", in(roles.Nurse, "create", "Observation", "TREAT"), true, []string{"nurse-record-observations"}, ""},
		{"nurse may not prescribe", in(roles.Nurse, "create", "MedicationRequest", "TREAT"), false, []string{"default-deny"}, errcode.ProviderNotAuthorized},
		{"registrar demographics", in(roles.Registrar, "create", "Patient", "HOPERAT"), true, []string{"registrar-demographics"}, ""},
		{"registrar no clinical", in(roles.Registrar, "read", "Observation", "TREAT"), false, []string{"default-deny"}, errcode.ProviderNotAuthorized},
		{"researcher de-identified", in(roles.Researcher, "read", "Observation", "HRESCH", func(i *policy.Input) { i.Resource.DataClass = "deidentified" }), true, []string{"researcher-deidentified"}, ""},
		{"researcher at night", in(roles.Researcher, "read", "Observation", "HRESCH", func(i *policy.Input) {
			i.Resource.DataClass = "deidentified"
			i.Time = workday.Add(13 * time.Hour)
		}), false, []string{"default-deny"}, errcode.ProviderNotAuthorized},
		{"researcher identified data", in(roles.Researcher, "read", "Observation", "HRESCH"), false, []string{"default-deny"}, errcode.ProviderNotAuthorized},
		{"auditor reads audit", in(roles.Auditor, "audit-read", "Audit", "HOPERAT"), true, []string{"auditor-audit-log"}, ""},
		{"auditor no clinical data", in(roles.Auditor, "read", "Observation", "TREAT"), false, []string{"default-deny"}, errcode.ProviderNotAuthorized},
		{"security admin no clinical data", in(roles.SecurityAdmin, "read", "Patient", "TREAT"), false, []string{"default-deny"}, errcode.ProviderNotAuthorized},
		{"security admin manages policy", in(roles.SecurityAdmin, "manage-policy", "Policy", "HOPERAT"), true, []string{"security-admin-policy"}, ""},
		{"system admin operates", in(roles.SystemAdmin, "manage-system", "System", "HOPERAT"), true, []string{"system-admin-operations"}, ""},
		{"key custodian approves", in(roles.KeyCustodian, "approve-key-operation", "Key", "HOPERAT"), true, []string{"key-custodian-approvals"}, ""},
		{"very restricted without treatment", in(roles.Nurse, "read", "Observation", "TREAT", func(i *policy.Input) { i.Resource.Labels = []string{"V"} }), false, []string{"very-restricted", "break-glass-available"}, errcode.BreakGlassRequired},
		{"two admin roles", in(roles.SystemAdmin, "manage-system", "System", "HOPERAT", func(i *policy.Input) { i.Principal.Roles = append(i.Principal.Roles, roles.Auditor) }), false, []string{"separation-of-duties"}, errcode.ProviderNotAuthorized},
		{"purpose not allowed", in(roles.Clinician, "read", "Observation", "MARKETING"), false, []string{"purpose-not-allowed"}, errcode.ProviderNotAuthorized},
		{"unknown action", in(roles.Clinician, "export", "Observation", "TREAT"), false, []string{"unknown-action"}, errcode.ProviderNotAuthorized},
		{"break-glass eligibility: clinician", in(roles.Clinician, "break-glass", "Observation", "ETREAT"), true, []string{"break-glass-eligible"}, ""},
		{"break-glass eligibility: registrar", in(roles.Registrar, "break-glass", "Observation", "ETREAT"), false, []string{"default-deny"}, errcode.ProviderNotAuthorized},
		{"registrar without relationship: no break-glass offer", in(roles.Registrar, "read", "Observation", "TREAT", noTreatment), false, []string{"default-deny"}, errcode.ProviderNotAuthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := e.Decide(c.in)
			if d.Allow != c.allow || !slices.Equal(d.Reasons, c.reasons) || d.Code != c.code {
				t.Fatalf("got allow=%v reasons=%v code=%s", d.Allow, d.Reasons, d.Code)
			}
			if err := d.Err(); (err == nil) != c.allow {
				t.Fatal("Err disagrees with Allow")
			} else if err != nil && (strings.Contains(err.Error(), "u1") || errcode.CodeOf(err) != c.code) {
				t.Fatalf("denial error %v", err)
			}
		})
	}
}

func TestReloadFromDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := policy.WriteDefault(dir); err != nil {
		t.Fatal(err)
	}
	e, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e.Location = time.UTC
	nurseCreate := in(roles.Nurse, "create", "Observation", "TREAT")
	if !e.Decide(nurseCreate).Allow {
		t.Fatal("default set not loaded")
	}
	// An operator removes the nurses' write permission.
	path := filepath.Join(dir, "phix.cedar")
	b, _ := os.ReadFile(path)
	text := string(b)
	start := strings.Index(text, `@id("nurse-record-observations")`)
	end := start + strings.Index(text[start:], "};") + 2
	os.WriteFile(path, []byte(text[:start]+text[end:]), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Watch(ctx, 10*time.Millisecond, nil)
	waitFor(t, func() bool { return !e.Decide(nurseCreate).Allow })
	// A broken file is refused; the running set stays.
	os.WriteFile(filepath.Join(dir, "broken.cedar"), []byte(`permit (principal, action, resource) when { `), 0o600)
	if err := e.Reload(); err == nil {
		t.Fatal("broken policy file accepted")
	}
	if !e.Decide(in(roles.Clinician, "read", "Observation", "TREAT")).Allow {
		t.Fatal("running set lost after a failed reload")
	}
	// A duplicate @id is refused.
	os.WriteFile(filepath.Join(dir, "broken.cedar"), []byte(`@id("clinician-treatment") permit (principal, action, resource);`), 0o600)
	if err := e.Reload(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate id: %v", err)
	}
	// SIGHUP reloads: fix the directory, then signal.
	os.WriteFile(filepath.Join(dir, "broken.cedar"), []byte(`@id("nurse-back") permit (principal, action == Phix::Action::"create", resource) when { principal.roles.contains("nurse") };`), 0o600)
	hold := make(chan os.Signal, 1)
	signal.Notify(hold, syscall.SIGHUP) // the test process must not die of it either
	defer signal.Stop(hold)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, func() bool { return slices.Contains(e.Decide(nurseCreate).Reasons, "nurse-back") })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FuzzDecide: arbitrary inputs never panic, and never allow a caller with
// no role, a malformed purpose or two administrator roles.
func FuzzDecide(f *testing.F) {
	e := engine(f)
	f.Add("clinician", "read", "Observation", "TREAT", "V", "hospital-a", true, false, "deny", int64(0))
	f.Add("auditor,system-admin", "manage-system", "System", "HOPERAT", "", "", false, false, "", int64(1))
	f.Fuzz(func(t *testing.T, roleList, action, typ, purpose, label, org string, treat, bg bool, consent string, ts int64) {
		var rs []roles.Role
		for _, r := range strings.Split(roleList, ",") {
			if r != "" {
				rs = append(rs, roles.Role(r))
			}
		}
		i := policy.Input{Principal: policy.Principal{ID: "u", Roles: rs, Org: org}, Action: action,
			Resource: policy.Resource{Type: typ, Labels: []string{label}}, Purpose: purpose,
			Treatment: policy.Treatment{CareTeam: treat}, BreakGlass: bg, Consent: consent, Time: time.Unix(ts, 0)}
		d := e.Decide(i)
		if d.Allow && (len(rs) == 0 || !slices.Contains(policy.Purposes, purpose) || roles.Check(rs) != nil) {
			t.Fatalf("allowed %+v", i)
		}
		if !d.Allow && (len(d.Reasons) == 0 || d.Code == "") {
			t.Fatal("denial without reasons or code")
		}
	})
}

// TestDenialOperationOutcome: a denial renders as an OperationOutcome with
// the PHI code and the policy ids, and nothing from the request.
func TestDenialOperationOutcome(t *testing.T) {
	e := engine(t)
	i := in(roles.Clinician, "read", "Observation", "TREAT", func(i *policy.Input) {
		i.Principal.ID = "Practitioner/dr-wang"
		i.Resource.Labels = []string{"PSY"}
		i.Treatment = policy.Treatment{}
	})
	oo := errcode.OperationOutcome(e.Decide(i).Err())
	b, _ := json.Marshal(oo)
	s := string(b)
	for _, want := range []string{"PHI-6011", "treatment-relationship-required", "break-glass-available"} {
		if !strings.Contains(s, want) {
			t.Fatalf("OperationOutcome lacks %s: %s", want, s)
		}
	}
	for _, leak := range []string{"dr-wang", "PSY", "hospital-a"} {
		if strings.Contains(s, leak) {
			t.Fatalf("OperationOutcome carries request data %q", leak)
		}
	}
}
