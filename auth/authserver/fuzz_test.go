package authserver_test

import (
	"context"
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
