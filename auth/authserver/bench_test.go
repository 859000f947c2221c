package authserver_test

import (
	"context"
	"net/url"
	"testing"

	"phix/auth/authserver"
)

// BenchmarkTokenEndpoint: one token request over real HTTP (loopback) on
// SQLite, per grant: client_credentials (assertion verify + jti insert +
// one ES256 signature) and refresh_token (lookup, compare-and-set, insert
// of the next token, access and ID token signatures).
func BenchmarkTokenEndpoint(b *testing.B) {
	e := newEnv(b, nil)
	ctx := context.Background()
	k := genClientKey(b, "ES384")
	if err := e.as.RegisterClient(ctx, authserver.Client{ID: "svc", JWKS: k.jwks(), Scope: "system/Patient.rs", ClientCredentials: true}); err != nil {
		b.Fatal(err)
	}
	b.Run("client_credentials", func(b *testing.B) {
		for b.Loop() {
			if st, body := e.clientCredentials(e.assertion(k, "svc", nil), "system/Patient.rs"); st != 200 {
				b.Fatalf("%d %v", st, body)
			}
		}
	})
	b.Run("refresh_token", func(b *testing.B) {
		if err := e.as.RegisterClient(ctx, authserver.Client{ID: "app", RedirectURIs: []string{redirect}, Scope: "openid offline_access user/*.rs"}); err != nil {
			b.Fatal(err)
		}
		if err := e.as.SetUser(ctx, authserver.User{Name: "dr-lee", Roles: []string{"clinician"}}, "correct horse battery"); err != nil {
			b.Fatal(err)
		}
		rt := e.codeFlow(b, "app", "openid offline_access user/*.rs", "dr-lee", "correct horse battery", "")["refresh_token"].(string)
		for b.Loop() {
			st, body := e.post("/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"app"}, "refresh_token": {rt}})
			if st != 200 {
				b.Fatalf("%d %v", st, body)
			}
			rt = body["refresh_token"].(string)
		}
	})
}
