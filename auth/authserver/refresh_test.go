package authserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"phix/auth/authserver"
)

const appScope = "openid fhirUser launch/patient offline_access online_access patient/*.rs user/*.rs"

// codeFlow runs authorize → login (with a patient typed into the form) →
// token over HTTP and returns the token response (status 200 required).
func (e *env) codeFlow(t testing.TB, client, scope, user, pw, patient string) map[string]any {
	t.Helper()
	st, body := e.tryCodeFlow(t, client, scope, user, pw, patient)
	if st != http.StatusOK {
		t.Fatalf("code flow: %d %v", st, body)
	}
	return body
}

func (e *env) tryCodeFlow(t testing.TB, client, scope, user, pw, patient string) (int, map[string]any) {
	t.Helper()
	verifier, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {scope},
		"state": {"st"}, "nonce": {"n-1"}, "aud": {audience}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	resp, page := e.authorize(t, q)
	m := requestRE.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	if strings.Contains(scope, "launch/patient") != strings.Contains(page, `name="patient"`) {
		t.Fatal("the login form asks for a patient exactly when launch/patient is requested")
	}
	r, err := noFollow.PostForm(e.srv.URL+"/auth/authorize", url.Values{"request": {m[1]}, "username": {user}, "password": {pw}, "patient": {patient}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusFound {
		return r.StatusCode, nil
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	return e.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect},
		"client_id": {client}, "code_verifier": {verifier}})
}

func (e *env) refresh(client, rt, scope string) (int, map[string]any) {
	f := url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}}
	if scope != "" {
		f.Set("scope", scope)
	}
	return e.post("/token", f)
}

// verifyIDToken checks an ID token's signature against the server's
// published JWKS (fetched over HTTP) and returns its claims.
func (e *env) verifyIDToken(t *testing.T, raw string) map[string]any {
	t.Helper()
	resp, err := http.Get(e.issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(obj.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatal("ID token key not in the JWKS")
	}
	payload, err := obj.Verify(keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(payload, &c)
	return c
}

func setupApp(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	for _, id := range []string{"app", "app2"} {
		if err := e.as.RegisterClient(ctx, authserver.Client{ID: id, RedirectURIs: []string{redirect}, Scope: appScope}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.as.SetUser(ctx, authserver.User{Name: "dr-lee", Roles: []string{"clinician"}, Org: "hospital-a", FHIRUser: "Practitioner/p9",
		Patients: []string{"p1", "p2"}}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
}

// TestIDTokenAndLaunchPatient: openid fhirUser gives a signed ID token
// (aud = client, nonce, absolute fhirUser) verifiable with the published
// JWKS; launch/patient puts the chosen patient in the token response and
// the access token, and only a patient the user may pick.
func TestIDTokenAndLaunchPatient(t *testing.T) {
	e := newEnv(t, nil)
	setupApp(t, e)
	ctx := context.Background()
	if st, _ := e.tryCodeFlow(t, "app", "openid fhirUser launch/patient patient/*.rs", "dr-lee", "correct horse battery", "p3"); st != http.StatusUnauthorized {
		t.Fatalf("a patient outside the user's list was accepted: %d", st)
	}
	if st, _ := e.tryCodeFlow(t, "app", "openid fhirUser launch/patient patient/*.rs", "dr-lee", "correct horse battery", ""); st != http.StatusUnauthorized {
		t.Fatalf("no patient chosen among two: %d", st)
	}
	body := e.codeFlow(t, "app", "openid fhirUser launch/patient patient/*.rs", "dr-lee", "correct horse battery", "p2")
	if body["patient"] != "p2" || body["refresh_token"] != nil {
		t.Fatalf("token response %v", body)
	}
	c, err := e.v.Verify(ctx, body["access_token"].(string))
	if err != nil || c.String("patient") != "p2" {
		t.Fatalf("access token patient claim: %v", err)
	}
	id := e.verifyIDToken(t, body["id_token"].(string))
	if id["iss"] != e.issuer || id["sub"] != "dr-lee" || id["aud"] != "app" || id["nonce"] != "n-1" || id["fhirUser"] != audience+"/Practitioner/p9" || id["auth_time"] == nil {
		t.Fatalf("ID token claims %v", id)
	}
	// An ID token is not an access token for the FHIR server (aud).
	if _, err := e.v.Verify(ctx, body["id_token"].(string)); err == nil {
		t.Fatal("ID token verified as an access token")
	}
	// Without openid no ID token; without fhirUser no fhirUser claim.
	body = e.codeFlow(t, "app", "launch/patient patient/*.rs", "dr-lee", "correct horse battery", "p1")
	if body["id_token"] != nil || body["patient"] != "p1" {
		t.Fatalf("%v", body)
	}
	body = e.codeFlow(t, "app", "openid user/*.rs", "dr-lee", "correct horse battery", "")
	if id := e.verifyIDToken(t, body["id_token"].(string)); id["fhirUser"] != nil || body["patient"] != nil {
		t.Fatalf("%v %v", id, body)
	}
	// A patient user may only open their own record, picked without typing.
	if err := e.as.SetUser(ctx, authserver.User{Name: "pat-1", FHIRUser: "Patient/p7", Patients: []string{"p1"}}, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	if body := e.codeFlow(t, "app", "launch/patient patient/*.rs", "pat-1", "a long enough password", ""); body["patient"] != "p7" {
		t.Fatalf("%v", body)
	}
	if st, _ := e.tryCodeFlow(t, "app", "launch/patient patient/*.rs", "pat-1", "a long enough password", "p1"); st != http.StatusUnauthorized {
		t.Fatal("a patient user opened another patient")
	}
	if err := e.as.SetUser(ctx, authserver.User{Name: "x", Patients: []string{"../p"}}, "a long enough password"); err == nil {
		t.Fatal("malformed patient id stored")
	}
}

// TestRefreshTokens: rotation on use, reuse detection revoking the family,
// binding to the client, narrowing only, and the online/offline bounds.
func TestRefreshTokens(t *testing.T) {
	clock := time.Now()
	e := newEnv(t, func(c *authserver.Config) { c.Now = func() time.Time { return clock } })
	setupApp(t, e)
	ctx := context.Background()
	scope := "openid launch/patient offline_access patient/Observation.rs patient/Patient.rs"
	body := e.codeFlow(t, "app", scope, "dr-lee", "correct horse battery", "p1")
	rt1, _ := body["refresh_token"].(string)
	if rt1 == "" {
		t.Fatalf("no refresh token for offline_access: %v", body)
	}
	st, b2 := e.refresh("app", rt1, "")
	rt2, _ := b2["refresh_token"].(string)
	if st != 200 || rt2 == "" || rt2 == rt1 || b2["patient"] != "p1" || b2["id_token"] == nil || b2["scope"] != body["scope"] {
		t.Fatalf("refresh: %d %v", st, b2)
	}
	if c, err := e.v.Verify(ctx, b2["access_token"].(string)); err != nil || c.Subject != "dr-lee" || c.String("patient") != "p1" {
		t.Fatalf("refreshed access token: %v", err)
	}
	// Narrowing is allowed (the family keeps its scope), widening is not.
	st, b3 := e.refresh("app", rt2, "patient/Observation.rs")
	rt3, _ := b3["refresh_token"].(string)
	if st != 200 || b3["scope"] != "patient/Observation.rs" || rt3 == "" {
		t.Fatalf("narrowing: %d %v", st, b3)
	}
	if st, b := e.refresh("app", rt3, "patient/Observation.cruds"); st != 400 || b["error"] != "invalid_scope" {
		t.Fatalf("widening: %d %v", st, b)
	}
	// A reuse of rt1 revokes the family: rt3, never presented successfully
	// (the refused widening did not burn it), stops working.
	if st, b := e.refresh("app", rt1, ""); st != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", st, b)
	}
	if st, _ := e.refresh("app", rt3, ""); st != 400 {
		t.Fatal("family not revoked after reuse")
	}
	body = e.codeFlow(t, "app", scope, "dr-lee", "correct horse battery", "p1")
	a1 := body["refresh_token"].(string)
	st, b := e.refresh("app", a1, "")
	a2 := b["refresh_token"].(string)
	if st != 200 {
		t.Fatal(st)
	}
	if st, _ := e.refresh("app", a1, ""); st != 400 {
		t.Fatal("reused refresh token accepted")
	}
	if st, _ := e.refresh("app", a2, ""); st != 400 {
		t.Fatal("family not revoked after reuse: the newest token still works")
	}
	// Bound to the client: another client presenting it fails and the
	// family is revoked.
	body = e.codeFlow(t, "app", scope, "dr-lee", "correct horse battery", "p1")
	c1 := body["refresh_token"].(string)
	if st, _ := e.refresh("app2", c1, ""); st != 400 {
		t.Fatal("refresh token accepted from another client")
	}
	if st, _ := e.refresh("app", c1, ""); st != 400 {
		t.Fatal("family survived presentation by another client")
	}
	// No refresh token without offline_access or online_access.
	if b := e.codeFlow(t, "app", "patient/Patient.rs launch/patient", "dr-lee", "correct horse battery", "p1"); b["refresh_token"] != nil {
		t.Fatal("refresh token without offline/online access")
	}
	// online_access lives 8 h, offline_access 30 days, absolutely.
	on := e.codeFlow(t, "app", "online_access user/*.rs", "dr-lee", "correct horse battery", "")["refresh_token"].(string)
	off := e.codeFlow(t, "app", "offline_access user/*.rs", "dr-lee", "correct horse battery", "")["refresh_token"].(string)
	clock = clock.Add(9 * time.Hour)
	if st, _ := e.refresh("app", on, ""); st != 400 {
		t.Fatal("online_access refresh token outlived 8 h")
	}
	st, b = e.refresh("app", off, "")
	if st != 200 {
		t.Fatalf("offline_access refresh after 9 h: %d %v", st, b)
	}
	off = b["refresh_token"].(string)
	clock = clock.Add(30 * 24 * time.Hour)
	if st, _ := e.refresh("app", off, ""); st != 400 {
		t.Fatal("rotation extended the family beyond 30 days")
	}
	// Disabling the user revokes its refresh tokens.
	clock = time.Now()
	off = e.codeFlow(t, "app", "offline_access user/*.rs", "dr-lee", "correct horse battery", "")["refresh_token"].(string)
	if err := e.as.DisableUser(ctx, "dr-lee"); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.refresh("app", off, ""); st != 400 {
		t.Fatal("disabled user refreshed")
	}
	if st, _ := e.tryCodeFlow(t, "app", "user/*.rs", "dr-lee", "correct horse battery", ""); st != http.StatusUnauthorized {
		t.Fatal("disabled user logged in")
	}
	// Garbage is invalid_grant, never a 500; nothing is stored in clear.
	for _, g := range []string{"", "x", strings.Repeat("a", 4000)} {
		if st, b := e.refresh("app", g, ""); st != 400 || b["error"] != "invalid_grant" {
			t.Fatalf("%q: %d %v", g[:min(len(g), 8)], st, b)
		}
	}
	var n int
	e.db.QueryRow(`SELECT COUNT(*) FROM as_refresh WHERE id = $1 OR family = $1`, off).Scan(&n)
	if n != 0 {
		t.Fatal("refresh token stored in clear")
	}
}
