package authserver_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"phix/auth/authserver"
)

// A distinctive patient id and encounter, looked for in the logs.
const (
	ehrPatient   = "pat-7f3a91c2"
	ehrEncounter = "enc-55d0e1b4"
	ehrUser      = "dr-ehr"
	ehrPassword  = "correct horse battery staple"
	ehrAppScope  = "openid fhirUser launch launch/patient launch/encounter offline_access patient/*.rs user/*.rs"
)

// launchEnv is an endpointsEnv plus an EHR client (ehr), two apps allowed
// EHR launch (ehrapp, ehrapp2) and a user who may open ehrPatient and p1.
type launchEnv struct {
	*endpointsEnv
	ehr clientKey
}

func newLaunchEnv(t *testing.T, open func(*testing.T, func(*authserver.Config)) *env) *launchEnv {
	t.Helper()
	le := &launchEnv{endpointsEnv: newEndpointsEnv(t, open), ehr: genClientKey(t, "ES384")}
	ctx := context.Background()
	for _, c := range []authserver.Client{
		{ID: "ehr", JWKS: le.ehr.jwks(), Scope: "system/Patient.rs", EHR: true},
		{ID: "ehrapp", RedirectURIs: []string{redirect}, Scope: ehrAppScope},
		{ID: "ehrapp2", RedirectURIs: []string{redirect}, Scope: ehrAppScope},
	} {
		if err := le.as.RegisterClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := le.as.SetUser(ctx, authserver.User{Name: ehrUser, Roles: []string{"clinician"}, FHIRUser: "Practitioner/p9",
		Patients: []string{ehrPatient, "p1"}}, ehrPassword); err != nil {
		t.Fatal(err)
	}
	return le
}

// launch creates a launch context as the EHR (kv: form fields beyond the
// assertion) and returns the launch value (status 201 required).
func (le *launchEnv) launch(t *testing.T, kv ...string) string {
	t.Helper()
	st, b := le.post("/launch", with(le.auth(le.ehr, "ehr"), kv...))
	if st != http.StatusCreated || b["expires_in"] != float64(300) {
		t.Fatalf("launch: %d %v", st, b)
	}
	v, _ := b["launch"].(string)
	if len(v) < 40 {
		t.Fatalf("launch value %q", v)
	}
	return v
}

// ehrFlow is the app's side of an EHR launch over HTTP: /authorize with
// launch → login → code → token. It returns the OAuth error code when
// /authorize redirects back with one, the login's status when the login is
// refused, else 200 and the token response.
func (le *launchEnv) ehrFlow(t *testing.T, client, scope, launch, user, pw string) (int, string, map[string]any) {
	t.Helper()
	verifier, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {scope},
		"state": {"st"}, "aud": {audience}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	if launch != "" {
		q.Set("launch", launch)
	}
	resp, page := le.authorize(t, q)
	if resp.StatusCode == http.StatusFound {
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("state") != "st" {
			t.Fatal("error redirect without state")
		}
		return resp.StatusCode, loc.Query().Get("error"), nil
	}
	m := requestRE.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	if launch != "" && strings.Contains(page, `name="patient"`) {
		t.Fatal("the login form asks for a patient in an EHR launch")
	}
	r, err := noFollow.PostForm(le.srv.URL+"/auth/authorize", url.Values{"request": {m[1]}, "username": {user}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusFound {
		return r.StatusCode, "", nil
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	st, b := le.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect},
		"client_id": {client}, "code_verifier": {verifier}})
	if st != 200 {
		t.Fatalf("token: %d %v", st, b)
	}
	return st, "", b
}

// TestEHRLaunch: the whole EHR launch over HTTP on SQLite and PostgreSQL.
func TestEHRLaunch(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testEHRLaunch(t, sqliteEnv) })
	t.Run("postgres", func(t *testing.T) { testEHRLaunch(t, postgresEnv) })
}

// testEHRLaunch: the EHR registers a launch → the app authorizes with it
// → the user logs in → code → token with patient, encounter, fhirContext
// and intent; the access token carries patient and encounter; refresh and
// introspection keep them; the launch value is single use.
func testEHRLaunch(t *testing.T, open func(*testing.T, func(*authserver.Config)) *env) {
	le := newLaunchEnv(t, open)
	ctx := context.Background()
	lv := le.launch(t, "target_client_id", "ehrapp", "patient", ehrPatient, "encounter", ehrEncounter,
		"fhir_context", "Location/ward-3 Appointment/a1", "intent", "reconcile-medications")
	st, code, b := le.ehrFlow(t, "ehrapp", ehrAppScope, lv, ehrUser, ehrPassword)
	if st != 200 {
		t.Fatalf("EHR launch: %d %s", st, code)
	}
	fc, _ := b["fhirContext"].([]any)
	if b["patient"] != ehrPatient || b["encounter"] != ehrEncounter || b["intent"] != "reconcile-medications" || len(fc) != 2 ||
		fc[0].(map[string]any)["reference"] != "Location/ward-3" {
		t.Fatalf("token response context: %v", b)
	}
	c, err := le.v.Verify(ctx, b["access_token"].(string))
	if err != nil || c.String("patient") != ehrPatient || c.String("encounter") != ehrEncounter {
		t.Fatalf("access token claims: %v", err)
	}
	in := le.introspect(t, b["access_token"].(string))
	if in["patient"] != ehrPatient || in["encounter"] != ehrEncounter {
		t.Fatalf("introspection of the access token: %v", in)
	}
	rt := b["refresh_token"].(string)
	if in := le.introspect(t, rt); in["patient"] != ehrPatient || in["encounter"] != ehrEncounter {
		t.Fatalf("introspection of the refresh token: %v", in)
	}
	st, r := le.refresh("ehrapp", rt, "")
	if fc, _ := r["fhirContext"].([]any); st != 200 || r["patient"] != ehrPatient || r["encounter"] != ehrEncounter || len(fc) != 2 || r["intent"] != "reconcile-medications" {
		t.Fatalf("refresh lost the context: %d %v", st, r)
	}
	if c, err := le.v.Verify(ctx, r["access_token"].(string)); err != nil || c.String("encounter") != ehrEncounter {
		t.Fatalf("refreshed access token: %v", err)
	}
	// Single use: the same value again is refused, back to the app.
	if st, code, _ := le.ehrFlow(t, "ehrapp", ehrAppScope, lv, ehrUser, ehrPassword); st != http.StatusFound || code != "invalid_request" {
		t.Fatalf("launch reused: %d %s", st, code)
	}
	// A launch without encounter, for an app asking launch/patient only:
	// patient context and no encounter anywhere.
	lv = le.launch(t, "target_client_id", "ehrapp", "patient", "p1")
	_, _, b = le.ehrFlow(t, "ehrapp", "launch launch/patient patient/*.rs", lv, ehrUser, ehrPassword)
	if b["patient"] != "p1" || b["encounter"] != nil || b["fhirContext"] != nil || b["intent"] != nil {
		t.Fatalf("%v", b)
	}
	if c, err := le.v.Verify(ctx, b["access_token"].(string)); err != nil || c.String("encounter") != "" {
		t.Fatalf("encounter claim without an encounter: %v", err)
	}
}

// TestEHRLaunchRefusals: at /authorize, launch values that are unknown,
// reused, expired or created for another app, and the scope rules; at the
// login, a launch patient outside the user's list.
func TestEHRLaunchRefusals(t *testing.T) {
	le := newLaunchEnv(t, sqliteEnv)
	ctx := context.Background()
	if err := le.as.SetUser(ctx, authserver.User{Name: "dr-other", Roles: []string{"clinician"}, Patients: []string{"p2"}}, ehrPassword); err != nil {
		t.Fatal(err)
	}
	fresh := func() string {
		return le.launch(t, "target_client_id", "ehrapp", "patient", ehrPatient, "encounter", ehrEncounter)
	}
	used := fresh()
	if st, _, _ := le.ehrFlow(t, "ehrapp", ehrAppScope, used, ehrUser, ehrPassword); st != 200 {
		t.Fatal("setup: launch refused")
	}
	noEncounter := le.launch(t, "target_client_id", "ehrapp", "patient", ehrPatient)
	forOther := le.launch(t, "target_client_id", "ehrapp2", "patient", ehrPatient, "encounter", ehrEncounter)
	for _, tc := range []struct {
		name, client, scope, launch, user string
		status                            int
		code                              string
	}{
		{"unknown launch", "ehrapp", ehrAppScope, "no-such-launch-value-0123456789", ehrUser, 302, "invalid_request"},
		{"overlong launch", "ehrapp", ehrAppScope, strings.Repeat("x", 200), ehrUser, 302, "invalid_request"},
		{"reused launch", "ehrapp", ehrAppScope, used, ehrUser, 302, "invalid_request"},
		{"launch of another app", "ehrapp", ehrAppScope, forOther, ehrUser, 302, "invalid_request"},
		{"launch without the launch scope", "ehrapp", "launch/patient patient/*.rs", fresh(), ehrUser, 302, "invalid_scope"},
		{"launch scope without launch", "ehrapp", "launch patient/*.rs", "", ehrUser, 302, "invalid_request"},
		{"standalone launch/encounter", "ehrapp", "launch/patient launch/encounter patient/*.rs", "", ehrUser, 302, "invalid_scope"},
		{"launch/encounter without an encounter", "ehrapp", ehrAppScope, noEncounter, ehrUser, 302, "invalid_request"},
		{"launch scope beyond the registration", "app", "launch patient/*.rs", fresh(), ehrUser, 302, "invalid_scope"},
		{"launch patient not the user's", "ehrapp", ehrAppScope, fresh(), "dr-other", 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, code, _ := le.ehrFlow(t, tc.client, tc.scope, tc.launch, tc.user, ehrPassword)
			if st != tc.status || code != tc.code {
				t.Fatalf("got %d %q, want %d %q", st, code, tc.status, tc.code)
			}
		})
	}
	// The app the launch was for can still use it after another app's attempt.
	other := le.launch(t, "target_client_id", "ehrapp2", "patient", ehrPatient)
	le.ehrFlow(t, "ehrapp", ehrAppScope, other, ehrUser, ehrPassword) // refused: not ehrapp's
	if st, _, b := le.ehrFlow(t, "ehrapp2", "launch launch/patient patient/*.rs", other, ehrUser, ehrPassword); st != 200 || b["patient"] != ehrPatient {
		t.Fatalf("another app's attempt burnt the launch: %d %v", st, b)
	}
	// Expired: 5 minutes and a second after creation.
	late := fresh()
	le.clk.Add(authserver.LaunchLifetime + time.Second)
	if st, code, _ := le.ehrFlow(t, "ehrapp", ehrAppScope, late, ehrUser, ehrPassword); st != http.StatusFound || code != "invalid_request" {
		t.Fatalf("expired launch: %d %s", st, code)
	}
}

// TestLaunchEndpointRefusals: POST /launch refuses non-EHR and public
// clients, missing or bad authentication, and malformed bodies, with
// stable OAuth error codes; no launch row is created by any of them.
func TestLaunchEndpointRefusals(t *testing.T) {
	le := newLaunchEnv(t, sqliteEnv)
	const form = "application/x-www-form-urlencoded"
	good := func(kv ...string) url.Values {
		return with(le.auth(le.ehr, "ehr"), append([]string{"target_client_id", "ehrapp", "patient", ehrPatient}, kv...)...)
	}
	for _, tc := range []struct {
		name   string
		form   func() url.Values
		status int
		code   string
	}{
		{"not an EHR", func() url.Values {
			return with(le.auth(le.svc, "svc"), "target_client_id", "ehrapp", "patient", ehrPatient)
		}, 403, "unauthorized_client"},
		{"public client", func() url.Values {
			return url.Values{"client_id": {"ehrapp"}, "target_client_id": {"ehrapp"}, "patient": {ehrPatient}}
		}, 401, "invalid_client"},
		{"client_id not the assertion's", func() url.Values { return good("client_id", "svc") }, 401, "invalid_client"},
		{"assertion of a stranger's key", func() url.Values {
			return with(good(), "client_assertion", le.signed(genClientKey(t, "ES384"), "ehr"))
		}, 401, "invalid_client"},
		{"no patient", func() url.Values { f := good(); f.Del("patient"); return f }, 400, "invalid_request"},
		{"malformed patient", func() url.Values { return good("patient", "../Patient/x") }, 400, "invalid_request"},
		{"no target", func() url.Values { f := good(); f.Del("target_client_id"); return f }, 400, "invalid_request"},
		{"unknown target", func() url.Values { return good("target_client_id", "nobody") }, 400, "invalid_request"},
		{"target without redirect URIs", func() url.Values { return good("target_client_id", "svc2") }, 400, "invalid_request"},
		{"malformed encounter", func() url.Values { return good("encounter", "a b") }, 400, "invalid_request"},
		{"malformed fhir_context", func() url.Values { return good("fhir_context", "Location/ok patient/x") }, 400, "invalid_request"},
		{"too many fhir_context", func() url.Values { return good("fhir_context", strings.Repeat("Location/l ", 11)) }, 400, "invalid_request"},
		{"malformed intent", func() url.Values { return good("intent", "two words") }, 400, "invalid_request"},
		{"unknown parameter", func() url.Values { return good("encouter", ehrEncounter) }, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, b := le.post("/launch", tc.form())
			if st != tc.status || b["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", st, b, tc.status, tc.code)
			}
			if d, _ := b["error_description"].(string); strings.Contains(d, ehrPatient) {
				t.Fatal("the error quotes the patient")
			}
		})
	}
	body := good().Encode()
	for _, tc := range []struct{ name, query, ctype, body string }{
		{"JSON body", "", "application/json", `{"target_client_id":"ehrapp","patient":"p1"}`},
		{"parameters in the URL", "patient=" + ehrPatient, form, body},
		{"repeated parameter", "", form, body + "&patient=p1"},
		{"not a form", "", form, "patient=%zz"},
		{"too large", "", form, body + "&intent=" + strings.Repeat("a", 70<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, b := le.raw(t, "/launch", tc.query, tc.ctype, tc.body)
			if st != 400 || b["error"] != "invalid_request" {
				t.Fatalf("got %d %v", st, b)
			}
		})
	}
	var n int
	if err := le.db.QueryRow(`SELECT COUNT(*) FROM as_launch`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused requests stored %d launches (%v)", n, err)
	}
	if st, _ := le.post("/launch", good()); st != http.StatusCreated {
		t.Fatal("the good request of the table is refused")
	}
}

// TestLaunchLeaksNoPHI: the log written by launch creation, EHR launches,
// their refusals (reused, other app, wrong user, not an EHR, store down)
// holds neither the patient id, the encounter nor a launch value, and the
// store holds only the launch value's hash.
func TestLaunchLeaksNoPHI(t *testing.T) {
	le := newLaunchEnv(t, sqliteEnv)
	ctx := context.Background()
	if err := le.as.SetUser(ctx, authserver.User{Name: "dr-other", Roles: []string{"clinician"}, Patients: []string{"p2"}}, ehrPassword); err != nil {
		t.Fatal(err)
	}
	mk := func() string {
		return le.launch(t, "target_client_id", "ehrapp", "patient", ehrPatient, "encounter", ehrEncounter)
	}
	var values []string
	lv := mk()
	values = append(values, lv)
	le.ehrFlow(t, "ehrapp", ehrAppScope, lv, ehrUser, ehrPassword)
	le.ehrFlow(t, "ehrapp", ehrAppScope, lv, ehrUser, ehrPassword) // reused
	lv = mk()
	values = append(values, lv)
	le.ehrFlow(t, "ehrapp2", ehrAppScope, lv, ehrUser, ehrPassword)   // another app
	le.ehrFlow(t, "ehrapp", ehrAppScope, lv, "dr-other", ehrPassword) // not the user's patient
	le.post("/launch", with(le.auth(le.svc, "svc"), "target_client_id", "ehrapp", "patient", ehrPatient))
	le.post("/launch", with(le.auth(le.ehr, "ehr"), "target_client_id", "ehrapp", "patient", ehrPatient+"/x"))
	var stored string
	if err := le.db.QueryRow(`SELECT id FROM as_launch LIMIT 1`).Scan(&stored); err != nil || slices.Contains(values, stored) {
		t.Fatalf("launch value stored in clear (%v)", err)
	}
	lv = mk()
	values = append(values, lv)
	if _, err := le.db.Exec(`DROP TABLE as_launch`); err != nil { // store failures are logged too
		t.Fatal(err)
	}
	le.ehrFlow(t, "ehrapp", ehrAppScope, lv, ehrUser, ehrPassword)
	le.post("/launch", with(le.auth(le.ehr, "ehr"), "target_client_id", "ehrapp", "patient", ehrPatient))
	logs := le.logs.String()
	for _, want := range []string{"EHR launch created", "EHR launch refused", "not an EHR", "EHR launch lookup failed", "launch failed"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("the log lacks %q (the leak check would be vacuous):\n%s", want, logs)
		}
	}
	for _, s := range append(values, ehrPatient, ehrEncounter) {
		if strings.Contains(logs, s) {
			t.Fatalf("a patient id, encounter or launch value is in the log:\n%s", logs)
		}
	}
}

// TestEHRDiscovery: the SMART configuration advertises EHR launch and its
// contexts, and the launch scopes; not a standalone encounter.
func TestEHRDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	st, doc := e.get(t, "/.well-known/smart-configuration")
	if st != 200 {
		t.Fatal(st)
	}
	has := func(k, v string) bool {
		l, _ := doc[k].([]any)
		return slices.Contains(l, any(v))
	}
	for _, c := range []string{"launch-ehr", "context-ehr-patient", "context-ehr-encounter", "launch-standalone", "context-standalone-patient"} {
		if !has("capabilities", c) {
			t.Fatalf("capability %s missing", c)
		}
	}
	if has("capabilities", "context-standalone-encounter") {
		t.Fatal("context-standalone-encounter advertised but not supported")
	}
	for _, s := range []string{"launch", "launch/patient", "launch/encounter"} {
		if !has("scopes_supported", s) {
			t.Fatalf("scope %s missing", s)
		}
	}
}

// TestMigrateAddsLaunchColumn: a store made before EHR launch (as_refresh
// without the launch column, a refresh token in it) is migrated, twice
// without harm, and the old row reads with an empty launch context.
func TestMigrateAddsLaunchColumn(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE as_refresh (id TEXT PRIMARY KEY, family TEXT NOT NULL, client TEXT NOT NULL, subject TEXT NOT NULL,
		scope TEXT NOT NULL, patient TEXT NOT NULL, auth_time BIGINT NOT NULL, expires BIGINT NOT NULL, used BIGINT NOT NULL DEFAULT 0, revoked BIGINT NOT NULL DEFAULT 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO as_refresh (id, family, client, subject, scope, patient, auth_time, expires) VALUES ('h', 'f', 'app', 'u', 'openid', 'p1', 1, 2)`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := authserver.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	var patient, launch string
	if err := db.QueryRow(`SELECT patient, launch FROM as_refresh WHERE id = 'h'`).Scan(&patient, &launch); err != nil || patient != "p1" || launch != "" {
		t.Fatalf("after migration: %q %q %v", patient, launch, err)
	}
}

func (e *env) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(e.issuer + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}
