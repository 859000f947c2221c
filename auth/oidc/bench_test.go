package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"phix/auth/oidc"
)

// BenchmarkVerifyES256 is the per-request cost of authenticating a bearer
// token (JWKS cached): parse, checks, one ES256 signature verification.
// BenchmarkRawES256 is the peer: the bare ecdsa.VerifyASN1 of the same size.
func BenchmarkVerifyES256(b *testing.B) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(jwks) }))
	defer srv.Close()
	v, err := oidc.New(oidc.Options{}, oidc.Provider{Issuer: "urn:bench", Audience: []string{"phix"}, JWKSURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: "k1"}}, nil)
	claims, _ := json.Marshal(map[string]any{"iss": "urn:bench", "aud": "phix", "sub": "svc", "iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Hour).Unix(), "scope": "system/*.cruds", "roles": []string{"clinician"}})
	obj, _ := s.Sign(claims)
	tok, _ := obj.CompactSerialize()
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawES256(b *testing.B) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h := sha256.Sum256(make([]byte, 300))
	sig, _ := ecdsa.SignASN1(rand.Reader, priv, h[:])
	for b.Loop() {
		h := sha256.Sum256(make([]byte, 300))
		if !ecdsa.VerifyASN1(&priv.PublicKey, h[:], sig) {
			b.Fatal("verify")
		}
	}
}
