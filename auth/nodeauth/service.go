package nodeauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"phix/auth/authserver"
)

// ServiceClient is a machine client of the node's authorization server
// (SMART Backend Services). Its private key lives in memory only: every
// start makes a new key and re-registers the client, so no client secret
// is ever on disk. Token returns a current access token, fetched through
// the token endpoint with a private_key_jwt assertion.
type ServiceClient struct {
	ID    string
	Scope string

	key       ed25519.PrivateKey
	kid       string
	tokenURL  string
	revokeURL string
	http      *http.Client

	mu  sync.Mutex
	tok string
	exp time.Time
}

// ServiceClientSpec describes a machine client to register.
type ServiceClientSpec struct {
	ID      string
	Scope   string   // the most it may ask for, and what Token asks for
	Roles   []string // carried into its tokens
	Purpose string
}

// RegisterServiceClient (re-)registers a backend-services client of the
// hospital with a fresh in-memory EdDSA key.
func (a *Auth) RegisterServiceClient(ctx context.Context, hospital string, spec ServiceClientSpec) (*ServiceClient, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	var kid [8]byte
	_, _ = rand.Read(kid[:])
	c := &ServiceClient{ID: spec.ID, Scope: spec.Scope, key: priv, kid: fmt.Sprintf("svc-%x", kid), tokenURL: a.AS.TokenURL(),
		revokeURL: a.AS.Issuer() + "/revoke", http: &http.Client{Timeout: 10 * time.Second}}
	jwks := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: c.kid, Algorithm: "EdDSA", Use: "sig"}}}
	if err := a.AS.RegisterClient(ctx, authserver.Client{ID: spec.ID, JWKS: jwks, Scope: spec.Scope, ClientCredentials: true,
		Roles: spec.Roles, Org: hospital, Purpose: spec.Purpose}); err != nil {
		return nil, err
	}
	return c, nil
}

// tokenMargin: a cached token is replaced this long before it expires.
const tokenMargin = 60 * time.Second

// Token returns an access token valid for at least another minute,
// cached between calls (a gateway.FHIRClient TokenSource).
func (c *ServiceClient) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != "" && time.Until(c.exp) > tokenMargin {
		return c.tok, nil
	}
	tok, life, err := c.fetch(ctx)
	if err != nil {
		return "", err
	}
	c.tok, c.exp = tok, time.Now().Add(time.Duration(life)*time.Second)
	return tok, nil
}

// Fresh fetches a new token, bypassing the cache (token files rewritten
// on a timer).
func (c *ServiceClient) Fresh(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tok, life, err := c.fetch(ctx)
	if err != nil {
		return "", err
	}
	c.tok, c.exp = tok, time.Now().Add(time.Duration(life)*time.Second)
	return tok, nil
}

// assertion signs a fresh private_key_jwt client assertion.
func (c *ServiceClient) assertion() (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: c.key, KeyID: c.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims, _ := json.Marshal(map[string]any{"iss": c.ID, "sub": c.ID, "aud": c.tokenURL,
		"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": base64.RawURLEncoding.EncodeToString(jti[:])})
	obj, err := signer.Sign(claims)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// Revoke revokes one of the client's access tokens at the authorization
// server (RFC 7009), e.g. at shutdown; the cached token is dropped when it
// is the one revoked. The resource servers refuse it within seconds.
func (c *ServiceClient) Revoke(ctx context.Context, token string) error {
	assertion, err := c.assertion()
	if err != nil {
		return err
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.revokeURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("nodeauth: revocation endpoint answered %d", resp.StatusCode)
	}
	c.mu.Lock()
	if c.tok == token {
		c.tok, c.exp = "", time.Time{}
	}
	c.mu.Unlock()
	return nil
}

func (c *ServiceClient) fetch(ctx context.Context) (string, int, error) {
	assertion, err := c.assertion()
	if err != nil {
		return "", 0, err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {c.Scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", 0, fmt.Errorf("nodeauth: token endpoint answered %d %s", resp.StatusCode, body.Error)
	}
	if body.ExpiresIn <= 0 {
		return "", 0, errors.New("nodeauth: token response without expires_in")
	}
	return body.AccessToken, body.ExpiresIn, nil
}
