package authserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"phix/auth/authserver"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// endpointsEnv is a server with: svc and svc2 (backend clients), rs (a
// resource server registered for introspection), app and app2 (public
// SMART apps) and the user dr-lee; its log goes to logs and its clock is
// clk.
type endpointsEnv struct {
	*env
	clk       *clock
	logs      *syncBuffer
	svc, svc2 clientKey
	rs        clientKey
}

func newEndpointsEnv(t *testing.T, open func(t *testing.T, mod func(*authserver.Config)) *env) *endpointsEnv {
	t.Helper()
	ee := &endpointsEnv{clk: &clock{t: time.Now()}, logs: &syncBuffer{}}
	ee.env = open(t, func(c *authserver.Config) {
		c.Now = ee.clk.Now
		c.Logger = slog.New(slog.NewTextHandler(ee.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	ee.svc, ee.svc2, ee.rs = genClientKey(t, "ES384"), genClientKey(t, "EdDSA"), genClientKey(t, "ES384")
	for _, c := range []authserver.Client{
		{ID: "svc", JWKS: ee.svc.jwks(), Scope: "system/Patient.rs", ClientCredentials: true, Roles: []string{"clinician"}},
		{ID: "svc2", JWKS: ee.svc2.jwks(), Scope: "system/Patient.rs", ClientCredentials: true, Roles: []string{"clinician"}},
		{ID: "rs", JWKS: ee.rs.jwks(), Scope: "system/Patient.rs", Introspect: true},
	} {
		if err := ee.as.RegisterClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	setupApp(t, ee.env)
	if err := ee.as.RegisterClient(ctx, authserver.Client{ID: "app", RedirectURIs: []string{redirect}, Scope: appScope + " profile"}); err != nil {
		t.Fatal(err)
	}
	return ee
}

func sqliteEnv(t *testing.T, mod func(*authserver.Config)) *env { return newEnv(t, mod) }

// auth returns the client authentication form fields of a backend client.
func (ee *endpointsEnv) auth(k clientKey, id string) url.Values {
	return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {ee.signed(k, id)}}
}

// signed is a client assertion valid by the server's (test) clock.
func (ee *endpointsEnv) signed(k clientKey, id string) string {
	return ee.assertion(k, id, map[string]any{"exp": ee.clk.Now().Add(4 * time.Minute).Unix()})
}

func base64URLDecode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func (ee *endpointsEnv) svcToken(t *testing.T, k clientKey, id string) string {
	t.Helper()
	st, b := ee.clientCredentials(ee.signed(k, id), "system/Patient.rs")
	if st != 200 {
		t.Fatalf("client_credentials: %d %v", st, b)
	}
	return b["access_token"].(string)
}

func with(v url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

// raw posts a body with a given content type (and URL query).
func (e *env) raw(t *testing.T, path, query, ctype, body string) (int, map[string]any) {
	t.Helper()
	u := e.srv.URL + "/auth" + path
	if query != "" {
		u += "?" + query
	}
	resp, err := http.Post(u, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (ee *endpointsEnv) introspect(t *testing.T, tok string) map[string]any {
	t.Helper()
	st, b := ee.post("/introspect", with(ee.auth(ee.rs, "rs"), "token", tok))
	if st != 200 {
		t.Fatalf("introspect: %d %v", st, b)
	}
	return b
}

func isInactive(b map[string]any) bool { return len(b) == 1 && b["active"] == false }

// TestRevokeAndIntrospectRefusals: the request errors of /revoke and
// /introspect (table-driven): malformed bodies are 400 invalid_request,
// bad client authentication 401 invalid_client; unknown tokens and hints
// are 200 with nothing revoked (RFC 7009 2.2) or active:false.
func TestRevokeAndIntrospectRefusals(t *testing.T) {
	ee := newEndpointsEnv(t, sqliteEnv)
	stranger := genClientKey(t, "ES384")
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	const ct = "application/x-www-form-urlencoded"
	for _, path := range []string{"/revoke", "/introspect"} {
		for _, c := range []struct {
			name, query, ctype, body string
			status                   int
			code                     string
		}{
			{"json body", "", "application/json", `{"token":"x","client_id":"app"}`, 400, "invalid_request"},
			{"no content type", "", "", form("token", "x", "client_id", "app"), 400, "invalid_request"},
			{"token in the URL", "token=x", ct, form("client_id", "app"), 400, "invalid_request"},
			{"bad escape", "", ct, "token=%zz&client_id=app", 400, "invalid_request"},
			{"token twice", "", ct, form("token", "a", "token", "b", "client_id", "app"), 400, "invalid_request"},
			{"body too large", "", ct, "token=" + strings.Repeat("A", 70<<10), 400, "invalid_request"},
			{"no client", "", ct, form("token", "x"), 401, "invalid_client"},
			{"unknown public client", "", ct, form("token", "x", "client_id", "nobody"), 401, "invalid_client"},
			{"confidential client without assertion", "", ct, form("token", "x", "client_id", "svc"), 401, "invalid_client"},
			{"assertion by a stranger's key", "", ct, with(url.Values{"token": {"x"}}, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
				"client_assertion", ee.assertion(stranger, "svc", nil)).Encode(), 401, "invalid_client"},
			{"wrong assertion type", "", ct, form("token", "x", "client_assertion_type", "bearer", "client_assertion", ee.assertion(ee.svc, "svc", nil)), 400, "invalid_request"},
			{"missing token", "", ct, with(ee.auth(ee.svc, "svc")).Encode(), 400, "invalid_request"},
		} {
			t.Run(path+"/"+c.name, func(t *testing.T) {
				st, b := ee.raw(t, path, c.query, c.ctype, c.body)
				if st != c.status || b["error"] != c.code {
					t.Fatalf("%d %v, want %d %s", st, b, c.status, c.code)
				}
				if d, _ := b["error_description"].(string); strings.Contains(d, "svc") || strings.Contains(d, "nobody") || strings.Contains(d, "AAAA") {
					t.Fatalf("error description echoes input: %q", d)
				}
			})
		}
	}
	// A public client may revoke (RFC 7009 2.1) but not introspect.
	if st, b := ee.post("/introspect", url.Values{"token": {"x"}, "client_id": {"app"}}); st != 401 || b["error"] != "invalid_client" {
		t.Fatalf("public client introspected: %d %v", st, b)
	}
	for _, hint := range []string{"", "access_token", "refresh_token", "id_token", "nonsense"} {
		f := url.Values{"token": {"not-a-token-of-this-server"}, "client_id": {"app"}}
		if hint != "" {
			f.Set("token_type_hint", hint)
		}
		if st, b := ee.post("/revoke", f); st != 200 {
			t.Fatalf("unknown token, hint %q: %d %v", hint, st, b)
		}
		if b := ee.introspect(t, "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"); !isInactive(b) {
			t.Fatalf("garbage JWT introspected as %v", b)
		}
	}
}

// TestRevokeAccessToken: a client revokes its access token (whatever the
// hint); introspection shows it inactive at once; another client's attempt
// is 200 and changes nothing; revoking twice is 200; the jti is kept
// until the token's exp (plus leeway) and then purged.
func TestRevokeAccessToken(t *testing.T) {
	for name, open := range map[string]func(*testing.T, func(*authserver.Config)) *env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) { testRevokeAccessToken(t, open) })
	}
}

func testRevokeAccessToken(t *testing.T, open func(*testing.T, func(*authserver.Config)) *env) {
	ee := newEndpointsEnv(t, open)
	ctx := context.Background()
	tok := ee.svcToken(t, ee.svc, "svc")
	if b := ee.introspect(t, tok); b["active"] != true || b["client_id"] != "svc" || b["sub"] != "svc" || b["scope"] != "system/Patient.rs" ||
		b["token_type"] != "Bearer" || b["exp"] == nil || b["iat"] == nil || b["username"] != nil {
		t.Fatalf("active token introspected as %v", b)
	}
	// Another client cannot revoke it, whatever it claims.
	if st, _ := ee.post("/revoke", with(ee.auth(ee.svc2, "svc2"), "token", tok, "token_type_hint", "access_token")); st != 200 {
		t.Fatalf("cross-client revocation answered %d", st)
	}
	if b := ee.introspect(t, tok); b["active"] != true {
		t.Fatal("another client revoked svc's token")
	}
	rt := authserver.NewRevokedTokens(ee.db)
	rt.Now = ee.clk.Now
	jti := jtiOf(t, tok)
	if r, err := rt.Revoked(ctx, jti); err != nil || r {
		t.Fatalf("before revocation: %v %v", r, err)
	}
	// The owner revokes it, with a misleading hint (hints are ignored).
	if st, _ := ee.post("/revoke", with(ee.auth(ee.svc, "svc"), "token", tok, "token_type_hint", "refresh_token")); st != 200 {
		t.Fatalf("revocation answered %d", st)
	}
	if b := ee.introspect(t, tok); !isInactive(b) {
		t.Fatalf("revoked token introspected as %v", b)
	}
	if st, _ := ee.post("/revoke", with(ee.auth(ee.svc, "svc"), "token", tok)); st != 200 {
		t.Fatal("second revocation not 200")
	}
	// The resource servers' list: cached up to RefreshEvery, then seen.
	if r, _ := rt.Revoked(ctx, jti); r {
		t.Fatal("the list was not served from its cache within RefreshEvery")
	}
	ee.clk.Add(3 * time.Second)
	if r, err := rt.Revoked(ctx, jti); err != nil || !r {
		t.Fatalf("revocation not seen after RefreshEvery: %v %v", r, err)
	}
	if r, _ := rt.Revoked(ctx, "some-other-jti"); r {
		t.Fatal("an unrelated jti is revoked")
	}
	// Kept until exp + grace, then purged by the next revocation.
	var n int
	ee.db.QueryRow(`SELECT COUNT(*) FROM as_revoked`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d revoked rows", n)
	}
	ee.clk.Add(authserver.MaxTokenLifetime + 2*time.Minute)
	if r, _ := rt.Revoked(ctx, jti); r {
		t.Fatal("an expired revocation is still listed")
	}
	tok2 := ee.svcToken(t, ee.svc, "svc")
	if st, _ := ee.post("/revoke", with(ee.auth(ee.svc, "svc"), "token", tok2)); st != 200 {
		t.Fatal("revocation failed")
	}
	var jtis []string
	rows, _ := ee.db.Query(`SELECT jti FROM as_revoked`)
	for rows.Next() {
		var j string
		rows.Scan(&j)
		jtis = append(jtis, j)
	}
	rows.Close()
	if len(jtis) != 1 || jtis[0] != jtiOf(t, tok2) {
		t.Fatalf("expired revocation not purged: %v", jtis)
	}
	// An expired token is simply inactive; revoking it is a no-op.
	if b := ee.introspect(t, tok); !isInactive(b) {
		t.Fatalf("expired token introspected as %v", b)
	}
	// The store down: the resource servers' check fails (the caller refuses).
	ee.db.Close()
	ee.clk.Add(3 * time.Second)
	if _, err := rt.Revoked(ctx, jti); err == nil {
		t.Fatal("an unreadable revocation list was not an error")
	}
}

func jtiOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	var c struct {
		JTI string `json:"jti"`
	}
	b, err := base64URLDecode(parts[1])
	if err != nil || json.Unmarshal(b, &c) != nil || c.JTI == "" {
		t.Fatal("token without jti")
	}
	return c.JTI
}

// TestRevokeRefreshChain: revoking any refresh token of a family — the
// current one or an already rotated one — revokes the whole chain; a
// public app revokes with its client_id; another client's attempt changes
// nothing.
func TestRevokeRefreshChain(t *testing.T) {
	for name, open := range map[string]func(*testing.T, func(*authserver.Config)) *env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			ee := newEndpointsEnv(t, open)
			rt1 := ee.codeFlow(t, "app", "offline_access launch/patient patient/*.rs", "dr-lee", "correct horse battery", "p1")["refresh_token"].(string)
			st, b := ee.refresh("app", rt1, "")
			if st != 200 {
				t.Fatalf("refresh: %d %v", st, b)
			}
			rt2 := b["refresh_token"].(string)
			if b := ee.introspect(t, rt2); b["active"] != true || b["client_id"] != "app" || b["sub"] != "dr-lee" || b["patient"] != "p1" {
				t.Fatalf("refresh token introspected as %v", b)
			}
			if b := ee.introspect(t, rt1); !isInactive(b) {
				t.Fatalf("used refresh token introspected as %v", b)
			}
			// app2 tries to revoke app's family: 200, nothing happens.
			if st, _ := ee.post("/revoke", url.Values{"token": {rt2}, "client_id": {"app2"}, "token_type_hint": {"refresh_token"}}); st != 200 {
				t.Fatalf("cross-client revocation answered %d", st)
			}
			if b := ee.introspect(t, rt2); b["active"] != true {
				t.Fatal("another client revoked app's refresh token")
			}
			// app revokes the old, already rotated token: the chain goes.
			if st, _ := ee.post("/revoke", url.Values{"token": {rt1}, "client_id": {"app"}}); st != 200 {
				t.Fatalf("revocation answered %d", st)
			}
			if st, _ := ee.refresh("app", rt2, ""); st != 400 {
				t.Fatal("the current refresh token survived the revocation of its family")
			}
			if b := ee.introspect(t, rt2); !isInactive(b) {
				t.Fatalf("revoked refresh token introspected as %v", b)
			}
			if st, _ := ee.post("/revoke", url.Values{"token": {rt2}, "client_id": {"app"}}); st != 200 {
				t.Fatal("revoking a revoked token is not 200")
			}
		})
	}
}

// TestIntrospection: who sees what. The resource-server client sees every
// token with the standard members; a client sees its own only; inactive
// answers are exactly {"active": false}.
func TestIntrospection(t *testing.T) {
	ee := newEndpointsEnv(t, sqliteEnv)
	ctx := context.Background()
	user := ee.codeFlow(t, "app", "openid fhirUser launch/patient patient/*.rs offline_access", "dr-lee", "correct horse battery", "p1")
	at, idt := user["access_token"].(string), user["id_token"].(string)
	svcTok := ee.svcToken(t, ee.svc, "svc")
	b := ee.introspect(t, at)
	for k, want := range map[string]any{"active": true, "client_id": "app", "sub": "dr-lee", "username": "dr-lee", "patient": "p1",
		"fhirUser": "Practitioner/p9", "token_type": "Bearer", "iss": ee.issuer, "aud": audience,
		"scope": "fhirUser launch/patient offline_access openid patient/*.rs"} {
		if b[k] != want {
			t.Fatalf("introspection %s = %v, want %v (%v)", k, b[k], want, b)
		}
	}
	for _, c := range []struct {
		name   string
		caller clientKey
		id     string
		tok    string
		active bool
	}{
		{"own token", ee.svc, "svc", svcTok, true},
		{"another client's token", ee.svc2, "svc2", svcTok, false},
		{"a user token of another client", ee.svc, "svc", at, false},
		{"resource server, machine token", ee.rs, "rs", svcTok, true},
		{"an ID token", ee.rs, "rs", idt, false},
		{"a tampered token", ee.rs, "rs", at[:len(at)-4] + "AAAA", false},
		{"garbage", ee.rs, "rs", "x.y.z", false},
		{"a long opaque string", ee.rs, "rs", strings.Repeat("A", 200), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, b := ee.post("/introspect", with(ee.auth(c.caller, c.id), "token", c.tok))
			if st != 200 || (b["active"] == true) != c.active || (!c.active && !isInactive(b)) {
				t.Fatalf("%d %v, want active=%v", st, b, c.active)
			}
		})
	}
	// A disabled user's tokens are inactive at once (the FHIR server
	// still accepts the access token until it expires, ≤ 300 s).
	if err := ee.as.DisableUser(ctx, "dr-lee"); err != nil {
		t.Fatal(err)
	}
	if b := ee.introspect(t, at); !isInactive(b) {
		t.Fatalf("disabled user's token introspected as %v", b)
	}
	// Expired.
	ee.clk.Add(authserver.MaxTokenLifetime + time.Second)
	if b := ee.introspect(t, svcTok); !isInactive(b) {
		t.Fatalf("expired token introspected as %v", b)
	}
}

// TestUserinfo: sub, fhirUser with the fhirUser scope, profile claims only
// with profile; RFC 6750 errors for no, bad, revoked or machine tokens and
// a token without openid.
func TestUserinfo(t *testing.T) {
	ee := newEndpointsEnv(t, sqliteEnv)
	ctx := context.Background()
	if err := ee.as.SetUser(ctx, authserver.User{Name: "dr-lee", Roles: []string{"clinician"}, FHIRUser: "Practitioner/p9", DisplayName: "Dr Lee",
		Patients: []string{"p1"}}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	token := func(scope string) string {
		return ee.codeFlow(t, "app", scope, "dr-lee", "correct horse battery", "")["access_token"].(string)
	}
	full := token("openid fhirUser profile user/*.rs")
	bare := token("openid user/*.rs")
	noOpenID := token("fhirUser user/*.rs")
	revoked := token("openid profile user/*.rs")
	if st, _ := ee.post("/revoke", url.Values{"token": {revoked}, "client_id": {"app"}}); st != 200 {
		t.Fatal("revocation failed")
	}
	get := func(method, tok string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest(method, ee.issuer+"/userinfo", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, resp.Header, m
	}
	for _, method := range []string{"GET", "POST"} {
		st, _, b := get(method, full)
		if st != 200 || b["sub"] != "dr-lee" || b["fhirUser"] != audience+"/Practitioner/p9" || b["preferred_username"] != "dr-lee" || b["name"] != "Dr Lee" {
			t.Fatalf("%s userinfo: %d %v", method, st, b)
		}
	}
	if st, _, b := get("GET", bare); st != 200 || len(b) != 1 || b["sub"] != "dr-lee" {
		t.Fatalf("openid only: %d %v", st, b)
	}
	for _, c := range []struct {
		name, tok string
		status    int
		www       string
	}{
		{"no token", "", 401, `Bearer realm="phix"`},
		{"garbage", "abc.def.ghi", 401, `error="invalid_token"`},
		{"revoked", revoked, 401, `error="invalid_token"`},
		{"machine token", ee.svcToken(t, ee.svc, "svc"), 401, `error="invalid_token"`},
		{"without openid", noOpenID, 403, `error="insufficient_scope"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, h, b := get("GET", c.tok)
			if st != c.status || !strings.Contains(h.Get("WWW-Authenticate"), c.www) || b["sub"] != nil {
				t.Fatalf("%d %q %v", st, h.Get("WWW-Authenticate"), b)
			}
		})
	}
}

// TestEndpointsAdvertised: both discovery documents name the new endpoints.
func TestEndpointsAdvertised(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{"/.well-known/smart-configuration", "/.well-known/openid-configuration"} {
		resp, err := http.Get(e.srv.URL + "/auth" + p)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		for k, v := range map[string]string{"userinfo_endpoint": "/userinfo", "revocation_endpoint": "/revoke", "introspection_endpoint": "/introspect"} {
			if doc[k] != e.issuer+v {
				t.Fatalf("%s: %s = %v", p, k, doc[k])
			}
		}
	}
}

// TestEndpointsLeakNoToken: the log written while tokens are revoked,
// introspected and presented to userinfo (refusals, cross-client attempts
// and store failures included) holds no token, assertion or jti.
func TestEndpointsLeakNoToken(t *testing.T) {
	ee := newEndpointsEnv(t, sqliteEnv)
	user := ee.codeFlow(t, "app", "openid fhirUser offline_access launch/patient patient/*.rs", "dr-lee", "correct horse battery", "p1")
	at, rt, idt := user["access_token"].(string), user["refresh_token"].(string), user["id_token"].(string)
	svcTok := ee.svcToken(t, ee.svc, "svc")
	secrets := []string{at, rt, idt, svcTok, jtiOf(t, at), jtiOf(t, svcTok)}
	a1, a2 := ee.auth(ee.svc2, "svc2"), ee.auth(ee.rs, "rs")
	secrets = append(secrets, a1.Get("client_assertion"), a2.Get("client_assertion"))
	ee.post("/revoke", with(a1, "token", svcTok))                        // another client's
	ee.post("/revoke", url.Values{"token": {rt}, "client_id": {"app2"}}) // another client's
	ee.post("/introspect", with(a2, "token", at))
	ee.post("/revoke", url.Values{"token": {at}, "client_id": {"app"}})
	ee.post("/revoke", url.Values{"token": {rt}, "client_id": {"app"}})
	ee.post("/revoke", with(a1, "token", svcTok)) // the assertion replayed: 401
	req, _ := http.NewRequest("GET", ee.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	ee.db.Close() // store failures are logged too
	ee.post("/revoke", url.Values{"token": {svcTok}, "client_id": {"app"}})
	ee.post("/introspect", with(ee.auth(ee.rs, "rs"), "token", at))
	logs := ee.logs.String()
	if !strings.Contains(logs, "revoked") || !strings.Contains(logs, "ignored") {
		t.Fatalf("the endpoints logged nothing (the leak check would be vacuous):\n%s", logs)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Fatalf("a token, assertion or jti is in the log:\n%s", logs)
		}
	}
	for _, part := range []string{at, svcTok} {
		for _, seg := range strings.Split(part, ".") {
			if len(seg) > 16 && strings.Contains(logs, seg) {
				t.Fatal("a token segment is in the log")
			}
		}
	}
}
