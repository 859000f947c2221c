package oidc_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"phix/auth/oidc"
)

func verifier(t testing.TB, o *realOP, mod func(*oidc.Provider, *oidc.Options)) *oidc.Verifier {
	t.Helper()
	p := oidc.Provider{Issuer: o.issuer(), Audience: []string{"phix-fhir"}}
	opts := oidc.Options{}
	if mod != nil {
		mod(&p, &opts)
	}
	v, err := oidc.New(opts, p)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCode(t *testing.T, err error, c oidc.Code) {
	t.Helper()
	if oidc.CodeOf(err) != c {
		t.Fatalf("got %v, want %s", err, c)
	}
}

func TestRealProviderTokensAndRotation(t *testing.T) {
	o := startOP(t, newKey(t, "rsa-1", jose.RS256))
	v := verifier(t, o, func(_ *oidc.Provider, opts *oidc.Options) { opts.RefetchInterval = time.Nanosecond })
	ctx := context.Background()
	tok := o.token(t)
	c, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != o.issuer() || c.Subject != "sid1" || !c.Audience.Contains("phix-fhir") || c.ClientID != "sid1" {
		t.Fatalf("claims %+v", c)
	}
	if n := o.jwksFetch.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for one provider, want 1", n)
	}
	// Cached: a second token costs no fetch.
	if _, err := v.Verify(ctx, o.token(t)); err != nil || o.jwksFetch.Load() != 1 {
		t.Fatalf("second verify: %v, %d fetches", err, o.jwksFetch.Load())
	}
	// Rotation to ES256 then EdDSA: the unknown kid triggers a refetch;
	// the older token keeps verifying (its key is still published).
	for i, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA} {
		o.rotate(newKey(t, fmt.Sprintf("k-%d", i), alg))
		nt := o.token(t)
		v2 := verifier(t, o, func(_ *oidc.Provider, opts *oidc.Options) { opts.RefetchInterval = time.Nanosecond })
		if _, err := v2.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := v2.Verify(ctx, nt); err != nil {
			t.Fatalf("%s after rotation: %v", alg, err)
		}
		hdr, _ := oidc.Parse(nt)
		if hdr.Header.Alg != string(alg) {
			t.Fatalf("OP signed with %s, want %s", hdr.Header.Alg, alg)
		}
	}
	// The first verifier picks the rotation up through the unknown kid.
	before := o.jwksFetch.Load()
	if _, err := v.Verify(ctx, o.token(t)); err != nil {
		t.Fatal(err)
	}
	if o.jwksFetch.Load() != before+1 {
		t.Fatal("unknown kid did not refetch the JWKS")
	}
}

func TestUnknownKidRefetchRateLimited(t *testing.T) {
	o := startOP(t, newKey(t, "rsa-1", jose.RS256))
	v := verifier(t, o, nil)
	ctx := context.Background()
	tok := o.token(t)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	p, _ := oidc.Parse(tok)
	for i := range 50 {
		forged := resign(t, p, map[string]any{"alg": "RS256", "kid": fmt.Sprintf("invented-%d", i)}, nil)
		_, err := v.Verify(ctx, forged)
		wantCode(t, err, oidc.CodeUnknownKey)
	}
	if n := o.jwksFetch.Load(); n > 2 {
		t.Fatalf("%d JWKS fetches for 50 invented kids, want at most 2", n)
	}
}

// resign rebuilds a token with a new header, optionally changed claims,
// and a signature made by sign (nil: the original signature bytes).
func resign(t testing.TB, p *oidc.Parsed, header map[string]any, claims map[string]any, sign ...func([]byte) []byte) string {
	t.Helper()
	hb, _ := json.Marshal(header)
	cl := map[string]any{}
	for k, raw := range p.Claims.Raw {
		var v any
		_ = json.Unmarshal(raw, &v)
		cl[k] = v
	}
	for k, v := range claims {
		cl[k] = v
	}
	cb, _ := json.Marshal(cl)
	in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	sig := p.Signature
	if len(sign) > 0 {
		sig = sign[0]([]byte(in))
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestRefusals(t *testing.T) {
	rsaKey := newKey(t, "rsa-1", jose.RS256)
	o := startOP(t, rsaKey)
	ctx := context.Background()
	tok := o.token(t)
	p, err := oidc.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	v := verifier(t, o, nil)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	hs := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte { m := hmac.New(sha256.New, key); m.Write(in); return m.Sum(nil) }
	}
	// A stranger's key under the OP's kid.
	stranger := newKey(t, "rsa-1", jose.RS256)
	strangerSign := func(in []byte) []byte {
		h := sha256.Sum256(in)
		s, err := stranger.priv.Sign(rand.Reader, h[:], cryptoSHA256)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name string
		tok  string
		v    *oidc.Verifier
		want oidc.Code
	}{
		{"alg none", resign(t, p, map[string]any{"alg": "none"}, nil, func([]byte) []byte { return nil }), v, oidc.CodeAlgNotAllowed},
		{"HS256 with the RSA public key as secret", resign(t, p, map[string]any{"alg": "HS256", "kid": "rsa-1"}, nil, hs(pubDER)), v, oidc.CodeAlgNotAllowed},
		{"ES256 header against the RSA kid", resign(t, p, map[string]any{"alg": "ES256", "kid": "rsa-1"}, nil), v, oidc.CodeKeyMismatch},
		{"forged signature", resign(t, p, map[string]any{"alg": "RS256", "kid": "rsa-1"}, map[string]any{"sub": "admin"}, strangerSign), v, oidc.CodeBadSignature},
		{"changed claims, original signature", resign(t, p, map[string]any{"alg": "RS256", "kid": "rsa-1"}, map[string]any{"scope": "system/*.cruds"}), v, oidc.CodeBadSignature},
		{"expired", tok, verifier(t, o, func(_ *oidc.Provider, op *oidc.Options) {
			op.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		}), oidc.CodeExpired},
		{"not yet valid", tok, verifier(t, o, func(_ *oidc.Provider, op *oidc.Options) {
			op.Now = func() time.Time { return time.Now().Add(-time.Hour) }
		}), oidc.CodeNotYetValid},
		{"wrong audience", tok, verifier(t, o, func(p *oidc.Provider, _ *oidc.Options) { p.Audience = []string{"other-server"} }), oidc.CodeWrongAudience},
		{"untrusted issuer", resign(t, p, map[string]any{"alg": "RS256", "kid": "rsa-1"}, map[string]any{"iss": "http://127.0.0.1:1"}), v, oidc.CodeUnknownIssuer},
		{"lifetime above bound", tok, verifier(t, o, func(p *oidc.Provider, _ *oidc.Options) { p.MaxLifetime = time.Second }), oidc.CodeLifetime},
		{"alg not accepted for issuer", tok, verifier(t, o, func(p *oidc.Provider, _ *oidc.Options) { p.Algorithms = []string{"ES256"} }), oidc.CodeAlgNotAllowed},
		{"garbage", "not.a.jwt!", v, oidc.CodeMalformed},
		{"two parts", "abc.def", v, oidc.CodeMalformed},
		{"too long", strings.Repeat("a", oidc.MaxTokenBytes+1), v, oidc.CodeTooLong},
		{"crit header", resign(t, p, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"x"}}, nil), v, oidc.CodeMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.v.Verify(ctx, c.tok)
			wantCode(t, err, c.want)
			if strings.Contains(err.Error(), c.tok[:min(len(c.tok), 20)]) {
				t.Fatal("error quotes the token")
			}
		})
	}
}

func TestProviderDown(t *testing.T) {
	o := startOP(t, newKey(t, "rsa-1", jose.RS256))
	tok := o.token(t)
	v := verifier(t, o, nil)
	o.srv.Close()
	_, err := v.Verify(context.Background(), tok)
	wantCode(t, err, oidc.CodeProviderFailure)
}
