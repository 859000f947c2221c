package authserver_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"phix/auth/authserver"
)

// FuzzVerifyAssertion: no fuzzed client assertion authenticates (the
// fuzzer holds no client key), and none panics.
func FuzzVerifyAssertion(f *testing.F) {
	e := newEnv(f, nil)
	k := genClientKey(f, "ES384")
	if err := e.as.RegisterClient(context.Background(), authserver.Client{ID: "svc", JWKS: k.jwks(), Scope: "system/Patient.rs", ClientCredentials: true}); err != nil {
		f.Fatal(err)
	}
	f.Add("eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJzdmMiLCJzdWIiOiJzdmMifQ.c2ln")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJzdmMiLCJzdWIiOiJzdmMifQ.")
	f.Fuzz(func(t *testing.T, raw string) {
		if c, err := e.as.VerifyAssertion(context.Background(), raw); err == nil || c != nil {
			t.Fatal("a fuzzed assertion authenticated")
		}
	})
}

// FuzzRefreshToken: no fuzzed refresh token (or scope) is redeemed, and
// every answer is an OAuth error, never a 500.
func FuzzRefreshToken(f *testing.F) {
	e := newEnv(f, nil)
	if err := e.as.RegisterClient(context.Background(), authserver.Client{ID: "app", RedirectURIs: []string{redirect}, Scope: "offline_access user/*.rs"}); err != nil {
		f.Fatal(err)
	}
	f.Add("", "")
	f.Add("dGhpcyBpcyBub3QgYSByZWZyZXNoIHRva2VuIGF0IGFsbA", "user/*.rs")
	f.Add(strings.Repeat("A", 43), "user/Patient.cruds?x=y")
	h := e.as.Handler()
	f.Fuzz(func(t *testing.T, rt, scope string) {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"app"}, "refresh_token": {rt}, "scope": {scope}}
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 400 {
			t.Fatalf("fuzzed refresh token answered %d", w.Code)
		}
	})
}
