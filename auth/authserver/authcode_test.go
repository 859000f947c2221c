package authserver_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"phix/auth/authserver"
	"phix/auth/totp"
)

const redirect = "http://127.0.0.1:1/app/callback"

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (e *env) authorize(t testing.TB, q url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := noFollow.Get(e.srv.URL + "/auth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

var requestRE = regexp.MustCompile(`name="request" value="([^"]+)"`)

func (e *env) login(t *testing.T, req, user, pw, code string) *http.Response {
	t.Helper()
	resp, err := noFollow.PostForm(e.srv.URL+"/auth/authorize", url.Values{"request": {req}, "username": {user}, "password": {pw}, "totp": {code}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestAuthorizationCodePKCEWithTOTP(t *testing.T) {
	var tm *totp.Manager
	e := newEnv(t, func(c *authserver.Config) { c.TOTP = tm })
	ctx := context.Background()
	if err := totp.Migrate(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	tm = totp.New(e.db, e.box, "phix test")
	e.open()
	if err := e.as.RegisterClient(ctx, authserver.Client{ID: "app", Name: "Chart viewer", RedirectURIs: []string{redirect}, Scope: "openid fhirUser user/*.rs patient/*.rs"}); err != nil {
		t.Fatal(err)
	}
	if err := e.as.SetUser(ctx, authserver.User{Name: "dr-lee", Roles: []string{"clinician"}, Org: "hospital-a", Purpose: "TREAT", FHIRUser: "Practitioner/p1", TOTPRequired: true}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	enr, err := tm.Begin(ctx, "dr-lee")
	if err != nil {
		t.Fatal(err)
	}
	codeAt := func(at time.Time) string {
		c, _ := ptotp.GenerateCodeCustom(enr.Secret, at, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		return c
	}
	if err := tm.Confirm(ctx, "dr-lee", codeAt(time.Now().Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}
	verifier, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect}, "scope": {"openid user/Patient.rs"},
		"state": {"st-1"}, "aud": {audience}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	resp, page := e.authorize(t, q)
	m := requestRE.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil || !strings.Contains(page, "Chart viewer") {
		t.Fatalf("login form: %d", resp.StatusCode)
	}
	req := m[1]
	if r := e.login(t, req, "dr-lee", "wrong password!!", codeAt(time.Now())); r.StatusCode != 401 {
		t.Fatalf("wrong password: %d", r.StatusCode)
	}
	if r := e.login(t, req, "dr-lee", "correct horse battery", "000000"); r.StatusCode != 401 {
		t.Fatalf("missing TOTP accepted: %d", r.StatusCode)
	}
	r := e.login(t, req, "dr-lee", "correct horse battery", codeAt(time.Now()))
	if r.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", r.StatusCode)
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	if loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" || !strings.HasPrefix(loc.String(), redirect) {
		t.Fatalf("redirect %s", loc.Redacted())
	}
	code := loc.Query().Get("code")
	redeem := func(code, verifier string) (int, map[string]any) {
		return e.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {"app"}, "code_verifier": {verifier}})
	}
	wrongVerifier, _ := pkce()
	// A wrong verifier burns the code too (single use).
	st, body := redeem(code, wrongVerifier)
	if st != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", st, body)
	}
	if st, _ := redeem(code, verifier); st != 400 {
		t.Fatal("code usable after a failed redemption")
	}
	// A fresh round trip succeeds.
	_, page = e.authorize(t, q)
	req = requestRE.FindStringSubmatch(page)[1]
	r = e.login(t, req, "dr-lee", "correct horse battery", codeAt(time.Now().Add(30*time.Second)))
	if r.StatusCode != http.StatusFound {
		t.Fatalf("second login: %d", r.StatusCode)
	}
	loc, _ = url.Parse(r.Header.Get("Location"))
	st, body = redeem(loc.Query().Get("code"), verifier)
	if st != 200 {
		t.Fatalf("redeem: %d %v", st, body)
	}
	c, err := e.v.Verify(ctx, body["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "dr-lee" || c.ClientID != "app" || c.String("fhirUser") != "Practitioner/p1" || strings.Join(c.Strings("roles"), ",") != "clinician" || !strings.Contains(c.Scope, "user/Patient.rs") {
		t.Fatalf("claims %+v", c)
	}
	if st, _ := redeem(loc.Query().Get("code"), verifier); st != 400 {
		t.Fatal("code redeemed twice")
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if err := e.as.RegisterClient(ctx, authserver.Client{ID: "app", RedirectURIs: []string{redirect}, Scope: "user/Patient.rs"}); err != nil {
		t.Fatal(err)
	}
	_, challenge := pkce()
	base := func() url.Values {
		return url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect}, "scope": {"user/Patient.rs"},
			"state": {"s"}, "aud": {audience}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	}
	for _, c := range []struct {
		name, key, value, wantErr string
		direct                    bool // refused without redirect
	}{
		{"plain PKCE", "code_challenge_method", "plain", "invalid_request", false},
		{"no PKCE", "code_challenge", "", "invalid_request", false},
		{"scope escalation", "scope", "user/Patient.cruds", "invalid_scope", false},
		{"wrong aud", "aud", "http://127.0.0.1:1/other", "invalid_request", false},
		{"token response type", "response_type", "token", "unsupported_response_type", false},
		{"unregistered redirect", "redirect_uri", "http://127.0.0.1:1/evil", "", true},
		{"unknown client", "client_id", "nobody", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := base()
			q.Set(c.key, c.value)
			resp, _ := e.authorize(t, q)
			if c.direct {
				if resp.StatusCode != 400 {
					t.Fatalf("%d", resp.StatusCode)
				}
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != c.wantErr || !strings.HasPrefix(loc.String(), redirect) {
				t.Fatalf("%d %s", resp.StatusCode, loc.Query().Get("error"))
			}
		})
	}
	// Lockout after repeated wrong passwords, for the right password too.
	if err := e.as.SetUser(ctx, authserver.User{Name: "nurse-kim", Roles: []string{"nurse"}}, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	_, page := e.authorize(t, base())
	req := requestRE.FindStringSubmatch(page)[1]
	for range 5 {
		e.login(t, req, "nurse-kim", "not the password", "")
	}
	if r := e.login(t, req, "nurse-kim", "a long enough password", ""); r.StatusCode != 401 {
		t.Fatalf("locked user logged in: %d", r.StatusCode)
	}
	// Separation of duties at registration.
	if err := e.as.SetUser(ctx, authserver.User{Name: "root", Roles: []string{"system-admin", "auditor"}}, "a long enough password"); err == nil {
		t.Fatal("user with system-admin and auditor stored")
	}
}
