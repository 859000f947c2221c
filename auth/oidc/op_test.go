package oidc_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// realOP is zitadel/oidc's OpenID Provider, embedded on 127.0.0.1:0, issuing
// real JWT access tokens through client_credentials. Its signing key can be
// rotated (and its algorithm changed) while it runs.
type realOP struct {
	*storage.Storage
	srv       *httptest.Server
	jwksFetch atomic.Int64
	mu        sync.Mutex
	keys      []*opKey // keys[0] signs; all are published
	audience  string
	tokenURL  string
}

type opKey struct {
	id   string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func (k *opKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *opKey) Key() any                                    { return k.priv }
func (k *opKey) ID() string                                  { return k.id }

type opPublic struct{ *opKey }

func (k opPublic) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k opPublic) Use() string                        { return "sig" }
func (k opPublic) Key() any                           { return k.priv.Public() }

func newKey(t testing.TB, id string, alg jose.SignatureAlgorithm) *opKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &opKey{id: id, alg: alg, priv: priv}
}

// SigningKey implements op.Storage: the newest key signs.
func (o *realOP) SigningKey(context.Context) (op.SigningKey, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keys[0], nil
}

// SignatureAlgorithms implements op.Storage.
func (o *realOP) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []jose.SignatureAlgorithm
	for _, k := range o.keys {
		out = append(out, k.alg)
	}
	return out, nil
}

// KeySet implements op.Storage: every key, so tokens signed before a
// rotation keep verifying.
func (o *realOP) KeySet(context.Context) ([]op.Key, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []op.Key
	for _, k := range o.keys {
		out = append(out, opPublic{k})
	}
	return out, nil
}

type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// ClientCredentials implements op.ClientCredentialsStorage with JWT access tokens.
func (o *realOP) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := o.Storage.ClientCredentials(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

// ClientCredentialsTokenRequest names the resource server as audience.
func (o *realOP) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	return &zoidc.JWTTokenRequest{Subject: clientID, Audience: []string{o.audience}, Scopes: scopes}, nil
}

func (o *realOP) rotate(k *opKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keys = append([]*opKey{k}, o.keys...)
}

func startOP(t testing.TB, first *opKey) *realOP {
	t.Helper()
	o := &realOP{audience: "phix-fhir", keys: []*opKey{first}}
	o.srv = httptest.NewUnstartedServer(nil)
	issuer := "http://" + o.srv.Listener.Addr().String()
	o.Storage = storage.NewStorage(storage.NewUserStore(issuer))
	cfg := &op.Config{CryptoKey: sha256.Sum256([]byte("test")), CodeMethodS256: true, AuthMethodPost: true}
	p, err := op.NewProvider(cfg, o, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	o.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			o.jwksFetch.Add(1)
		}
		p.ServeHTTP(w, r)
	})
	o.srv.Start()
	t.Cleanup(o.srv.Close)
	o.tokenURL = issuer + "/oauth/token"
	return o
}

func (o *realOP) issuer() string { return o.srv.URL }

// token runs a real client_credentials grant against the OP.
func (o *realOP) token(t testing.TB) string {
	t.Helper()
	resp, err := http.PostForm(o.tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"sid1"},
		"client_secret": {"verysecret"}, "scope": {"openid system/Patient.rs"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token endpoint: %d %v %s", resp.StatusCode, err, body.Error)
	}
	if strings.Count(body.AccessToken, ".") != 2 {
		t.Fatal("OP issued a non-JWT access token")
	}
	return body.AccessToken
}

const cryptoSHA256 = crypto.SHA256
