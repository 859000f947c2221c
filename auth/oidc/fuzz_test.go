package oidc_test

import (
	"context"
	"strings"
	"testing"

	"phix/auth/oidc"
)

// FuzzParse: the token parser never panics, and whatever it accepts has a
// non-empty alg and signing input made of the token's first two parts.
func FuzzParse(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("e30.e30.e30")
	f.Add("..")
	f.Add("eyJhbGciOiJSUzI1NiIsImFsZyI6Im5vbmUifQ.e30.")
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := oidc.Parse(raw)
		if err != nil {
			if oidc.CodeOf(err) == "" {
				t.Fatalf("error without code: %v", err)
			}
			return
		}
		if p.Header.Alg == "" || !strings.HasPrefix(raw, p.SigningInput+".") {
			t.Fatalf("accepted a token without alg or with a wrong signing input")
		}
	})
}

// FuzzVerify: no input verifies against a verifier that trusts no key, and
// none panics.
func FuzzVerify(f *testing.F) {
	v, err := oidc.New(oidc.Options{}, oidc.Provider{Issuer: "http://127.0.0.1:1", Audience: []string{"a"}, JWKSURL: "http://127.0.0.1:1/jwks"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjEifQ.c2ln")
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := v.Verify(context.Background(), raw); err == nil {
			t.Fatal("verified without any key")
		}
	})
}
