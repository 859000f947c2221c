package fhirserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"phix/auth/authserver"
	"phix/auth/oidc"
	"phix/auth/secretbox"
	"phix/auth/totp"
	"phix/suite"
)

var loginRequestRE = regexp.MustCompile(`name="request" value="([^"]+)"`)

// TestNoTokenLeaksBearerAuth: with OIDC bearer authentication, neither a
// real access token, a forged or tampered one, a user's password nor a TOTP
// secret (typed into the code field by mistake) reaches the FHIR server's
// log, the authorization server's answers or the FHIR error bodies.
func TestNoTokenLeaksBearerAuth(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if err := authserver.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := totp.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, _ := secretbox.NewKey(suite.Intl, key)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tm := totp.New(db, box, "phix leak test")
	hs := httptest.NewUnstartedServer(nil)
	as, err := authserver.New(ctx, authserver.Config{Issuer: "http://" + hs.Listener.Addr().String() + "/auth", Audience: testAudience,
		DB: db, Sealer: box, TOTP: tm, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = http.StripPrefix("/auth", as.Handler())
	hs.Start()
	t.Cleanup(hs.Close)

	const password = "leaky horse battery staple"
	redirect := "http://127.0.0.1:1/app/callback"
	if err := as.RegisterClient(ctx, authserver.Client{ID: "app", Name: "Chart viewer", RedirectURIs: []string{redirect}, Scope: "openid user/*.rs"}); err != nil {
		t.Fatal(err)
	}
	if err := as.SetUser(ctx, authserver.User{Name: "dr-leak", Roles: []string{"clinician"}, Org: "hospital-a", Purpose: "TREAT", TOTPRequired: true}, password); err != nil {
		t.Fatal(err)
	}
	enr, err := tm.Begin(ctx, "dr-leak")
	if err != nil {
		t.Fatal(err)
	}

	v, err := oidc.New(oidc.Options{}, oidc.Provider{Issuer: as.Issuer(), Audience: []string{testAudience}, MaxLifetime: authserver.MaxTokenLifetime})
	if err != nil {
		t.Fatal(err)
	}
	ba, err := NewBearerAuth(BearerAuthOptions{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, openSQLite(t), func(c *Config) { c.Auth, c.Logger = ba, logger })
	good := issue(t, as, authserver.Principal{Subject: "svc-leak", ClientID: "svc-leak", Roles: []string{"clinician"}, Org: "hospital-a", Purpose: "TREAT"})
	parts := strings.Split(good, ".")
	if len(parts) != 3 {
		t.Fatal("the access token is not a JWS")
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"Zyxwleakname","aud":"`+testAudience+`"}`)) + "." + parts[2]
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("not the signature of this token at all"))
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
	scan := &leakScan{}
	scan.addPHI([]string{"Zyxwleakname"}, nil)
	scan.addSecret(good, parts[1], parts[2], tampered, badSig, noneAlg, enr.Secret, password)

	var bodies [][]byte
	for i, tok := range []string{good, tampered, badSig, noneAlg, good + "x", "Zyxwleakname"} {
		e.token = tok
		r := e.do("GET", "/Patient?family=Zyxwleakname", nil)
		if (i == 0) != (r.status == 200) {
			t.Errorf("token #%d: status %d", i, r.status)
		}
		if i > 0 {
			bodies = append(bodies, r.body)
		}
		var hdr strings.Builder
		for k, vs := range r.header {
			fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		bodies = append(bodies, []byte(hdr.String()))
	}

	// The login form, with the TOTP secret pasted where the code goes and
	// the password in the user name field.
	s := sha256.Sum256([]byte("verifier-verifier-verifier-verifier-verifier"))
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect}, "scope": {"openid user/Patient.rs"},
		"state": {"st"}, "aud": {testAudience}, "code_challenge": {base64.RawURLEncoding.EncodeToString(s[:])}, "code_challenge_method": {"S256"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(hs.URL + "/auth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := loginRequestRE.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no login form (%d)", res.StatusCode)
	}
	for _, f := range []url.Values{
		{"request": {string(m[1])}, "username": {"dr-leak"}, "password": {password}, "totp": {enr.Secret}},
		{"request": {string(m[1])}, "username": {password}, "password": {password}, "totp": {"000000"}},
		{"request": {string(m[1]) + enr.Secret}, "username": {"dr-leak"}, "password": {password}, "totp": {enr.Secret}},
	} {
		res, err := noFollow.PostForm(hs.URL+"/auth/authorize", f)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusFound {
			t.Fatal("a login with a wrong TOTP code succeeded")
		}
		bodies = append(bodies, b, []byte(res.Header.Get("Location")))
	}
	// The token endpoint with the secrets as client credentials.
	res, err = http.PostForm(hs.URL+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {enr.Secret}, "client_assertion": {good}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	bodies = append(bodies, b)

	var hits []string
	for i, b := range bodies {
		hits = append(hits, scan.find(fmt.Sprintf("answer %d", i), b)...)
	}
	log := logs.String()
	if !strings.Contains(log, `"msg":"request"`) {
		t.Fatal("nothing logged")
	}
	hits = append(hits, scan.find("log", []byte(log))...)
	if len(hits) > 0 {
		t.Fatalf("%d leaks:\n%s", len(hits), strings.Join(hits, "\n"))
	}
}
