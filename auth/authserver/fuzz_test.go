package authserver_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

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

// FuzzParseEndpointForm: the /revoke and /introspect form parser never
// panics; what it accepts is a form body without a URL query and without
// repeated parameters; what it refuses is an invalid_request that does not
// quote the body.
func FuzzParseEndpointForm(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "", "token=abc&client_id=app")
	f.Add("application/x-www-form-urlencoded; charset=utf-8", "", "token=a&token=b")
	f.Add("application/json", "", `{"token":"x"}`)
	f.Add("application/x-www-form-urlencoded", "token=x", "")
	f.Add("application/x-www-form-urlencoded", "", "token=%zz;x=1")
	f.Fuzz(func(t *testing.T, ctype, query, body string) {
		v, err := authserver.ParseEndpointForm(ctype, query, []byte(body))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid_request: ") {
				t.Fatalf("refusal is not invalid_request: %v", err)
			}
			if len(body) > 8 && strings.Contains(err.Error(), body) {
				t.Fatal("refusal quotes the body")
			}
			return
		}
		if query != "" {
			t.Fatal("parameters in the URL accepted")
		}
		for _, vs := range v {
			if len(vs) != 1 {
				t.Fatal("a repeated parameter accepted")
			}
		}
	})
}

// FuzzRevokeIntrospectToken: no fuzzed token is ever active at
// /introspect, and /revoke answers 200 for any of them, never a 500.
func FuzzRevokeIntrospectToken(f *testing.F) {
	e := newEnv(f, nil)
	ctx := context.Background()
	if err := e.as.RegisterClient(ctx, authserver.Client{ID: "app", RedirectURIs: []string{redirect}, Scope: "offline_access user/*.rs"}); err != nil {
		f.Fatal(err)
	}
	rs := genClientKey(f, "EdDSA")
	if err := e.as.RegisterClient(ctx, authserver.Client{ID: "rs", JWKS: rs.jwks(), Scope: "system/Patient.rs", Introspect: true}); err != nil {
		f.Fatal(err)
	}
	f.Add("eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJpc3MiOiJ4In0.c2ln", "access_token")
	f.Add(strings.Repeat("A", 43), "refresh_token")
	f.Add("a.b.c", "nonsense")
	h := e.as.Handler()
	post := func(path string, form url.Values) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	f.Fuzz(func(t *testing.T, tok, hint string) {
		if tok == "" {
			return
		}
		if w := post("/revoke", url.Values{"token": {tok}, "token_type_hint": {hint}, "client_id": {"app"}}); w.Code != 200 {
			t.Fatalf("revoke answered %d", w.Code)
		}
		w := post("/introspect", url.Values{"token": {tok}, "token_type_hint": {hint},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {rs.sign(t, map[string]any{"iss": "rs", "sub": "rs", "aud": e.as.TokenURL(),
				"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": base64.RawURLEncoding.EncodeToString(randBytes(16))})}})
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"active":false}` {
			t.Fatalf("introspect answered %d %s", w.Code, w.Body.String())
		}
	})
}

// FuzzParseLaunchRequest: a POST /launch body either parses into a
// well-formed launch context or is refused with invalid_request, never
// quoting the body; nothing panics.
func FuzzParseLaunchRequest(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "", "target_client_id=app&patient=p1&encounter=e1&fhir_context=Location%2Fl1&intent=x")
	f.Add("application/x-www-form-urlencoded", "", "target_client_id=app&patient=..%2Fx")
	f.Add("application/x-www-form-urlencoded", "", "target_client_id=app&patient=p1&fhir_context=Location%2F+%2Fx")
	f.Add("application/x-www-form-urlencoded", "", "target_client_id=app&patient=p1&encouter=e1")
	f.Add("application/json", "", `{"patient":"p1"}`)
	f.Fuzz(func(t *testing.T, ctype, query, body string) {
		v, err := authserver.ParseEndpointForm(ctype, query, []byte(body))
		if err != nil {
			return
		}
		lr, err := authserver.ParseLaunchRequest(v)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid_request: ") {
				t.Fatalf("refusal is not invalid_request: %v", err)
			}
			if p := v.Get("patient"); len(p) > 8 && strings.Contains(err.Error(), p) {
				t.Fatal("refusal quotes the patient")
			}
			return
		}
		c := lr.Context
		if lr.ClientID == "" || c.Patient != v.Get("patient") || c.Encounter != v.Get("encounter") || len(c.FHIRContext) > 10 || len(c.Intent) > 64 {
			t.Fatalf("accepted %+v", lr)
		}
		for _, id := range append([]string{c.Patient, c.Encounter}, refIDs(c.FHIRContext)...) {
			if strings.ContainsAny(id, "/ %?#") || len(id) > 64 {
				t.Fatalf("malformed id accepted: %q", id)
			}
		}
		if c.Patient == "" {
			t.Fatal("launch without a patient accepted")
		}
	})
}

func refIDs(refs []authserver.ContextRef) []string {
	var out []string
	for _, r := range refs {
		typ, id, ok := strings.Cut(r.Reference, "/")
		if !ok || typ == "" {
			return []string{"/"} // fails the caller's check
		}
		out = append(out, id)
	}
	return out
}
