package authserver_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	_ "modernc.org/sqlite"

	"phix/auth/authserver"
	"phix/auth/oidc"
	"phix/auth/secretbox"
	"phix/suite"
)

const audience = "http://127.0.0.1:1/fhir/r4"

type env struct {
	t      testing.TB
	db     *sql.DB
	box    secretbox.Sealer
	srv    *httptest.Server
	as     *authserver.Server
	issuer string
	v      *oidc.Verifier
	cfgMod func(*authserver.Config)
}

func newEnv(t testing.TB, mod func(*authserver.Config)) *env {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "auth.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)") // as devnet opens it
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return newEnvDB(t, db, mod)
}

// newEnvDB runs the server over a given database (SQLite or PostgreSQL).
func newEnvDB(t testing.TB, db *sql.DB, mod func(*authserver.Config)) *env {
	t.Helper()
	var err error
	t.Cleanup(func() { db.Close() })
	if err := authserver.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, _ := secretbox.NewKey(suite.Intl, key)
	e := &env{t: t, db: db, box: box, cfgMod: mod}
	e.srv = httptest.NewUnstartedServer(nil)
	e.issuer = "http://" + e.srv.Listener.Addr().String() + "/auth"
	e.open()
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.StripPrefix("/auth", e.as.Handler()).ServeHTTP(w, r)
	})
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	e.v, err = oidc.New(oidc.Options{RefetchInterval: time.Nanosecond}, oidc.Provider{Issuer: e.issuer, Audience: []string{audience}, MaxLifetime: authserver.MaxTokenLifetime})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// open (re)opens the server on the same database (a restart).
func (e *env) open() {
	cfg := authserver.Config{Issuer: e.issuer, Audience: audience, DB: e.db, Sealer: e.box}
	if e.cfgMod != nil {
		e.cfgMod(&cfg)
	}
	as, err := authserver.New(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.as = as
}

type clientKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

func genClientKey(t testing.TB, alg string) clientKey {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case "RS384", "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{kid: "k-" + alg, alg: alg, priv: k}
}

func (k clientKey) jwks() *jose.JSONWebKeySet {
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"}}}
}

func (k clientKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	o, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := o.CompactSerialize()
	return out
}

func (e *env) assertion(k clientKey, client string, mod map[string]any) string {
	c := map[string]any{"iss": client, "sub": client, "aud": e.as.TokenURL(), "exp": time.Now().Add(4 * time.Minute).Unix(), "jti": base64.RawURLEncoding.EncodeToString(randBytes(16))}
	for key, v := range mod {
		if v == nil {
			delete(c, key)
		} else {
			c[key] = v
		}
	}
	return k.sign(e.t, c)
}

func randBytes(n int) []byte { b := make([]byte, n); rand.Read(b); return b }

func (e *env) post(path string, form url.Values) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.PostForm(e.srv.URL+"/auth"+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (e *env) clientCredentials(assertion, scope string) (int, map[string]any) {
	return e.post("/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
}

func TestBackendServices(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, alg := range []string{"RS384", "ES384", "EdDSA"} {
		k := genClientKey(t, alg)
		id := "backend-" + strings.ToLower(alg)
		if err := e.as.RegisterClient(ctx, authserver.Client{ID: id, JWKS: k.jwks(), Scope: "system/*.rs system/Observation.cruds",
			ClientCredentials: true, Roles: []string{"clinician"}, Org: "hospital-a", Purpose: "TREAT"}); err != nil {
			t.Fatal(err)
		}
		st, body := e.clientCredentials(e.assertion(k, id, nil), "system/Patient.rs system/Observation.cr")
		if st != 200 {
			t.Fatalf("%s: %d %v", alg, st, body)
		}
		if body["expires_in"].(float64) > 300 || body["token_type"] != "Bearer" {
			t.Fatalf("%s: %v", alg, body)
		}
		c, err := e.v.Verify(ctx, body["access_token"].(string))
		if err != nil {
			t.Fatalf("%s: own token does not verify through auth/oidc: %v", alg, err)
		}
		if c.Subject != id || c.ClientID != id || c.Scope != "system/Observation.cr system/Patient.rs" || c.String("org") != "hospital-a" ||
			c.String("purpose_of_use") != "TREAT" || strings.Join(c.Strings("roles"), ",") != "clinician" {
			t.Fatalf("%s: claims %+v", alg, c)
		}
		if c.Expiry.Time().Sub(c.IssuedAt.Time()) > 300*time.Second {
			t.Fatal("token lives over 300 s")
		}
	}
}

func TestBackendServicesRefusals(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	k := genClientKey(t, "ES384")
	if err := e.as.RegisterClient(ctx, authserver.Client{ID: "svc", JWKS: k.jwks(), Scope: "system/Patient.rs", ClientCredentials: true}); err != nil {
		t.Fatal(err)
	}
	other := genClientKey(t, "ES384")
	rs256 := genClientKey(t, "RS256")
	unsigned := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
		b, _ := json.Marshal(map[string]any{"iss": "svc", "sub": "svc", "aud": e.as.TokenURL(), "exp": time.Now().Add(time.Minute).Unix(), "jti": "x1"})
		return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
	}
	replayed := e.assertion(k, "svc", nil)
	if st, body := e.clientCredentials(replayed, "system/Patient.rs"); st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	cases := []struct {
		name, assertion, scope, wantErr string
		status                          int
	}{
		{"jti replay", replayed, "system/Patient.rs", "invalid_client", 401},
		{"scope escalation", e.assertion(k, "svc", nil), "system/Patient.cruds", "invalid_scope", 400},
		{"scope of another type", e.assertion(k, "svc", nil), "system/Observation.rs", "invalid_scope", 400},
		{"unknown scope", e.assertion(k, "svc", nil), "system/Patient.rs admin", "invalid_scope", 400},
		{"alg none", unsigned(), "system/Patient.rs", "invalid_client", 401},
		{"RS256 not allowed for assertions", e.assertion(rs256, "svc", nil), "system/Patient.rs", "invalid_client", 401},
		{"signed by another key", e.assertion(other, "svc", nil), "system/Patient.rs", "invalid_client", 401},
		{"wrong aud", e.assertion(k, "svc", map[string]any{"aud": "http://127.0.0.1:1/elsewhere"}), "system/Patient.rs", "invalid_client", 401},
		{"expired", e.assertion(k, "svc", map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), "system/Patient.rs", "invalid_client", 401},
		{"exp too far", e.assertion(k, "svc", map[string]any{"exp": time.Now().Add(time.Hour).Unix()}), "system/Patient.rs", "invalid_client", 401},
		{"no jti", e.assertion(k, "svc", map[string]any{"jti": nil}), "system/Patient.rs", "invalid_client", 401},
		{"iss != sub", e.assertion(k, "svc", map[string]any{"sub": "someone"}), "system/Patient.rs", "invalid_client", 401},
		{"unknown client", e.assertion(k, "nobody", nil), "system/Patient.rs", "invalid_client", 401},
		{"garbage", "abc", "system/Patient.rs", "invalid_client", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body := e.clientCredentials(c.assertion, c.scope)
			if st != c.status || body["error"] != c.wantErr {
				t.Fatalf("%d %v, want %d %s", st, body, c.status, c.wantErr)
			}
			if desc, _ := body["error_description"].(string); strings.Contains(desc, "svc") || (len(c.assertion) > 20 && strings.Contains(desc, c.assertion[:20])) {
				t.Fatal("error echoes input")
			}
		})
	}
	// No assertion at all, and a missing grant type.
	if st, body := e.post("/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}); st != 401 || body["error"] != "invalid_client" {
		t.Fatalf("%d %v", st, body)
	}
	if st, body := e.post("/token", url.Values{"grant_type": {"password"}}); st != 400 || body["error"] != "unsupported_grant_type" {
		t.Fatalf("%d %v", st, body)
	}
	// The replay cache survives a restart.
	e.open()
	if st, _ := e.clientCredentials(replayed, "system/Patient.rs"); st != 401 {
		t.Fatal("jti replay accepted after a restart")
	}
}

func TestClientLockout(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	k := genClientKey(t, "ES384")
	if err := e.as.RegisterClient(ctx, authserver.Client{ID: "svc", JWKS: k.jwks(), Scope: "system/Patient.rs", ClientCredentials: true}); err != nil {
		t.Fatal(err)
	}
	wrong := genClientKey(t, "ES384")
	for range 5 {
		e.clientCredentials(e.assertion(wrong, "svc", nil), "system/Patient.rs")
	}
	if st, body := e.clientCredentials(e.assertion(k, "svc", nil), "system/Patient.rs"); st != 401 || !strings.Contains(body["error_description"].(string), "locked") {
		t.Fatalf("client not locked out after 5 forged assertions: %d %v", st, body)
	}
}

func TestKeysPersistRotateAndSealed(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	tok1, _, err := e.as.Issue(authserver.Principal{Subject: "s", ClientID: "c", Scope: "system/Patient.rs"})
	if err != nil {
		t.Fatal(err)
	}
	kid1 := e.as.JWKS().Keys[0].KeyID
	e.open() // restart: same key
	if got := e.as.JWKS().Keys[0].KeyID; got != kid1 || len(e.as.JWKS().Keys) != 1 {
		t.Fatalf("key not persisted: %s vs %s", got, kid1)
	}
	if err := e.as.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	tok2, _, _ := e.as.Issue(authserver.Principal{Subject: "s", ClientID: "c"})
	p2, _ := oidc.Parse(tok2)
	if p2.Header.Kid == kid1 || len(e.as.JWKS().Keys) != 2 {
		t.Fatal("rotation did not add a new signing key")
	}
	for _, tok := range []string{tok1, tok2} {
		if _, err := e.v.Verify(ctx, tok); err != nil {
			t.Fatalf("token across rotation: %v", err)
		}
	}
	// No private key in plaintext in the database.
	rows, err := e.db.Query(`SELECT sealed FROM as_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var b []byte
		rows.Scan(&b)
		if _, err := x509.ParsePKCS8PrivateKey(b); err == nil {
			t.Fatal("signing key stored in plaintext")
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d keys stored", n)
	}
}

func TestDiscoveryDocuments(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{"/.well-known/smart-configuration", "/.well-known/openid-configuration"} {
		resp, err := http.Get(e.srv.URL + "/auth" + p)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if doc["issuer"] != e.issuer || doc["token_endpoint"] != e.issuer+"/token" || doc["jwks_uri"] != e.issuer+"/jwks" {
			t.Fatalf("%s: %v", p, doc)
		}
		if m, _ := doc["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
			t.Fatalf("%s: PKCE methods %v", p, m)
		}
	}
}

func pkce() (verifier, challenge string) {
	verifier = base64.RawURLEncoding.EncodeToString(randBytes(32))
	s := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(s[:])
}
