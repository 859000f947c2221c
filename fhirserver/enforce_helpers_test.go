package fhirserver

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"
	_ "modernc.org/sqlite"

	"phix/access/breakglass"
	"phix/access/policy"
	"phix/access/roles"
	"phix/access/scopes"
	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/audit/audittest"
	"phix/auth/secretbox"
	"phix/auth/totp"
	"phix/consent"
	"phix/fhir"
	"phix/internal/bearer"
	"phix/store"
	"phix/suite"
)

// principalAuth maps test bearer tokens to principals (what BearerAuth
// produces from a verified OIDC token; tokenauth_test covers that part).
type principalAuth map[string]*Principal

func (a principalAuth) Authenticate(r *http.Request) (*Principal, error) {
	tok, ok := bearer.Token(r)
	if !ok {
		return nil, ErrUnauthenticated
	}
	p, ok := a[tok]
	if !ok {
		return nil, ErrUnauthenticated
	}
	c := *p
	return &c, nil
}

func mustScopes(t testing.TB, s string) *scopes.Set {
	t.Helper()
	set, err := scopes.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

var (
	consentKeyOnce sync.Once
	consentKey     suite.SigningKey
	rogueKey       suite.SigningKey
)

func consentKeys(t testing.TB) (trusted, rogue suite.SigningKey) {
	t.Helper()
	consentKeyOnce.Do(func() {
		s, _ := suite.Lookup(suite.Intl)
		consentKey, _ = s.GenerateSigningKey()
		rogueKey, _ = s.GenerateSigningKey()
	})
	if consentKey == nil || rogueKey == nil {
		t.Fatal("consent key generation failed")
	}
	return consentKey, rogueKey
}

// enfEnv is a server with enforcement on, its principals and services.
type enfEnv struct {
	*env
	srv   *Server
	keys  *consent.TrustedKeys
	totp  *totp.Manager
	bg    *breakglass.Service
	log   *audit.Log
	ps    *audit.Pseudonymizer
	clock *fakeClock
	// totpNow is the TOTP/break-glass clock.
	totpNow time.Time
	secrets map[string]string
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Test principals: tokens are their names.
func enfPrincipals(t testing.TB) principalAuth {
	all := "user/*.cruds"
	return principalAuth{
		"lee":      {Subject: "dr-lee", Role: RoleClinician, Roles: []roles.Role{roles.Clinician}, FHIRUser: "Practitioner/lee", Org: "hospital-a", Scopes: mustScopes(t, all)},
		"kim":      {Subject: "dr-kim", Role: RoleClinician, Roles: []roles.Role{roles.Clinician}, FHIRUser: "Practitioner/kim", Org: "hospital-a", Scopes: mustScopes(t, all)},
		"zhao":     {Subject: "dr-zhao", Role: RoleClinician, Roles: []roles.Role{roles.Clinician}, FHIRUser: "Practitioner/zhao", Org: "hospital-c", Scopes: mustScopes(t, all)},
		"patonly":  {Subject: "app-1", Role: RoleClinician, Roles: []roles.Role{roles.Clinician}, FHIRUser: "Practitioner/lee", Scopes: mustScopes(t, "user/Patient.rs")},
		"readonly": {Subject: "app-2", Role: RoleClinician, Roles: []roles.Role{roles.Clinician}, FHIRUser: "Practitioner/lee", Scopes: mustScopes(t, "user/*.rs")},
		"vitals":   {Subject: "app-3", Role: RoleClinician, Roles: []roles.Role{roles.Clinician}, FHIRUser: "Practitioner/lee", Scopes: mustScopes(t, "user/Patient.rs user/Observation.rs?category=vital-signs")},
		"research": {Subject: "res-1", Role: RoleClinician, Roles: []roles.Role{roles.Researcher}, Scopes: mustScopes(t, all)},
		"auditor":  {Subject: "aud-1", Role: RoleAuditor, Roles: []roles.Role{roles.Auditor}, Scopes: mustScopes(t, "user/*.rs")},
	}
}

func newEnfEnv(t testing.TB, st store.Store, mod ...func(*Enforcement)) *enfEnv {
	t.Helper()
	return newEnfEnvCfg(t, st, nil, mod...)
}

// newEnfEnvCfg is newEnfEnv with a change to the server Config.
func newEnfEnvCfg(t testing.TB, st store.Store, cfgMod func(*Config), mod ...func(*Enforcement)) *enfEnv {
	t.Helper()
	ctx := context.Background()
	ee := &enfEnv{clock: &fakeClock{t: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)}, secrets: map[string]string{},
		totpNow: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)}
	trusted, _ := consentKeys(t)
	ee.keys = consent.NewTrustedKeys(trusted.Public())

	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if err := totp.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := breakglass.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := secretbox.NewKey(suite.Intl, key)
	if err != nil {
		t.Fatal(err)
	}
	ee.totp = totp.New(db, box, "phix test")
	ee.totp.Now = func() time.Time { return ee.totpNow }
	pe, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	pe.Location = time.UTC
	// Working hours on a weekday, whatever the real clock says.
	pe.Now = func() time.Time { return time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC) }
	ee.bg, err = breakglass.New(db, pe, ee.totp)
	if err != nil {
		t.Fatal(err)
	}
	ee.bg.Now = func() time.Time { return ee.totpNow }

	b, err := auditsqlite.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ee.ps = audittest.Pseudonyms(t)
	auth := enfPrincipals(t)
	ee.log, err = audit.Open(ctx, b, audit.Options{Origin: "test.phix/audit", Signer: audittest.SigningKey(t, suite.Intl),
		Pseudonyms: ee.ps, Authorizer: AuditAuthorizer(auth), PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ee.log.Close() })

	enf := &Enforcement{Policy: pe, ConsentKeys: ee.keys, BreakGlass: ee.bg, SecondFactor: ee.totp, Now: ee.clock.Now}
	for _, m := range mod {
		m(enf)
	}
	logs := &syncBuffer{}
	cfg := Config{Store: st, Auth: auth, Protector: testProtector(t), Audit: ee.log, AuditPseudonyms: ee.ps, Enforcement: enf, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	if cfgMod != nil {
		cfgMod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ee.srv = s
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	ee.env = &env{t: t, srv: hs, base: hs.URL + BasePath, token: "lee", store: st, logs: logs, protected: true}
	return ee
}

// as returns the env acting with another principal's token.
func (ee *enfEnv) as(token string) *env {
	c := *ee.env
	c.token = token
	return &c
}

// enrol enrols user in TOTP and returns a function producing a fresh code
// (the clock moves one step per code, so codes are never replayed).
func (ee *enfEnv) enrol(t testing.TB, user string) func() string {
	t.Helper()
	ctx := context.Background()
	enr, err := ee.totp.Begin(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	code := func() string {
		ee.totpNow = ee.totpNow.Add(30 * time.Second)
		c, err := ptotp.GenerateCodeCustom(enr.Secret, ee.totpNow, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := ee.totp.Confirm(ctx, user, code()); err != nil {
		t.Fatal(err)
	}
	return code
}

// signedConsent returns a signed Consent of patient with the given provision JSON.
func signedConsent(t testing.TB, key suite.SigningKey, id, patient, provision string) map[string]any {
	t.Helper()
	js := `{"resourceType":"Consent","id":"` + id + `","status":"active",
	"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
	"patient":{"reference":"Patient/` + patient + `"},"dateTime":"2025-01-01T00:00:00Z","policy":[{"uri":"http://example.org/privacy-policy"}],"provision":` + provision + `}`
	r, err := fhir.Parse([]byte(js), fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := consent.Sign(r, key, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return s.Object
}

// actorProvision is a provision of effect typ for one practitioner.
func actorProvision(typ, practitioner, extra string) string {
	return `{"type":"` + typ + `","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},
	"reference":{"reference":"` + practitioner + `"}}]` + extra + `}`
}

// seedClinical writes, as dr-lee: patients p1 and p2, CareTeams making lee
// and kim treat p1 and kim treat p2, and Observations (vital-signs and
// laboratory) for both.
func (ee *enfEnv) seedClinical(t testing.TB) {
	t.Helper()
	for _, id := range []string{"p1", "p2"} {
		ee.do("PUT", "/Patient/"+id, map[string]any{"resourceType": "Patient", "id": id, "active": true}).want(t, 201)
	}
	ee.do("PUT", "/CareTeam/ct1", careTeam("ct1", "p1", "Practitioner/lee", "Practitioner/kim")).want(t, 201)
	ee.do("PUT", "/CareTeam/ct2", careTeam("ct2", "p2", "Practitioner/kim")).want(t, 201)
	for i, spec := range []struct{ id, patient, cat, code string }{
		{"o1", "p1", "vital-signs", "8867-4"}, {"o2", "p1", "vital-signs", "8310-5"}, {"o3", "p1", "laboratory", "2345-7"},
		{"o4", "p2", "vital-signs", "8867-4"}, {"o5", "p2", "laboratory", "2345-7"}, {"o6", "p1", "vital-signs", "9279-1"},
	} {
		_ = i
		ee.do("PUT", "/Observation/"+spec.id, observation(spec.id, spec.patient, spec.cat, spec.code)).want(t, 201)
	}
}

func careTeam(id, patient string, members ...string) map[string]any {
	var ps []any
	for _, m := range members {
		ps = append(ps, map[string]any{"member": map[string]any{"reference": m}})
	}
	return map[string]any{"resourceType": "CareTeam", "id": id, "status": "active",
		"subject": map[string]any{"reference": "Patient/" + patient}, "participant": ps}
}

func observation(id, patient, category, code string) map[string]any {
	return map[string]any{"resourceType": "Observation", "id": id, "status": "final",
		"category":          []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}}}},
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
		"subject":           map[string]any{"reference": "Patient/" + patient},
		"effectiveDateTime": "2026-01-02T10:00:00Z",
		"valueQuantity":     map[string]any{"value": 70, "unit": "/min"}}
}

// ids lists the resource ids of a Bundle's entries of search mode mode.
func (r *resp) ids(mode string) []string {
	var out []string
	for _, e := range r.entries() {
		s, _ := e["search"].(map[string]any)
		if mode != "" && (s == nil || s["mode"] != mode) {
			continue
		}
		res, _ := e["resource"].(map[string]any)
		if id, ok := res["id"].(string); ok {
			out = append(out, id)
		}
	}
	return out
}

// events syncs the audit log and returns every event.
func (ee *enfEnv) events(t testing.TB) []audit.Event {
	t.Helper()
	a := &auditEnv{log: ee.log}
	return a.events(t)
}

var errNoEvent = errors.New("no such event")

// waitEvent returns the first event f accepts; reads are recorded
// asynchronously, so it polls the log for up to 5 s.
func (ee *enfEnv) waitEvent(t testing.TB, f func(audit.Event) bool) (audit.Event, error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev, err := findEvent(ee.events(t), f)
		if err == nil || time.Now().After(deadline) {
			return ev, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findEvent(evs []audit.Event, f func(audit.Event) bool) (audit.Event, error) {
	for _, ev := range evs {
		if f(ev) {
			return ev, nil
		}
	}
	return audit.Event{}, errNoEvent
}
