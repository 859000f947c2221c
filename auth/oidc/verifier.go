package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultAlgorithms are the signature algorithms accepted when a Provider
// names none: RS256, ES256 and EdDSA (OIDC), RS384 and ES384 (SMART Backend
// Services). HS* and none are never accepted.
var DefaultAlgorithms = []string{"RS256", "RS384", "ES256", "ES384", "EdDSA"}

// Provider is one trusted token issuer.
type Provider struct {
	// Issuer is the exact iss value; discovery is fetched from
	// Issuer + "/.well-known/openid-configuration" unless JWKSURL is set.
	Issuer string
	// Audience lists the aud values this resource server answers to; a
	// token must name at least one. Empty refuses every token.
	Audience []string
	// JWKSURL skips discovery (a provider without it).
	JWKSURL string
	// Algorithms narrows DefaultAlgorithms; HS*/none are refused anyway.
	Algorithms []string
	// MaxLifetime refuses tokens whose exp - iat exceeds it (0: no bound).
	MaxLifetime time.Duration
}

// Options tune a Verifier.
type Options struct {
	// HTTPClient fetches discovery documents and JWKS (default: 10 s timeout).
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp/nbf/iat (default 30 s).
	Leeway time.Duration
	// RefetchInterval rate-limits JWKS fetches triggered by an unknown kid
	// (default 30 s): a flood of tokens with invented kids costs one fetch.
	RefetchInterval time.Duration
	// MaxAge is how long a fetched JWKS is used before it is fetched again
	// (default 1 h).
	MaxAge time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verifier checks tokens from a fixed set of providers.
type Verifier struct {
	opts      Options
	providers map[string]*provider
}

type provider struct {
	cfg   Provider
	algs  map[string]bool
	opts  *Options
	fetch sync.Mutex // serialises network fetches

	mu        sync.RWMutex
	jwksURL   string
	keys      []jose.JSONWebKey
	fetched   time.Time // last successful JWKS fetch
	attempted time.Time // last fetch attempt
}

// New returns a Verifier for the providers. Nothing is fetched until the
// first token of a provider arrives (a provider that is down at start does
// not stop the server).
func New(opts Options, providers ...Provider) (*Verifier, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Leeway == 0 {
		opts.Leeway = 30 * time.Second
	}
	if opts.RefetchInterval == 0 {
		opts.RefetchInterval = 30 * time.Second
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{opts: opts, providers: map[string]*provider{}}
	for _, p := range providers {
		if p.Issuer == "" {
			return nil, errors.New("oidc: provider without issuer")
		}
		if _, dup := v.providers[p.Issuer]; dup {
			return nil, fmt.Errorf("oidc: provider %s configured twice", p.Issuer)
		}
		algs := p.Algorithms
		if len(algs) == 0 {
			algs = DefaultAlgorithms
		}
		pp := &provider{cfg: p, algs: map[string]bool{}, opts: &v.opts, jwksURL: p.JWKSURL}
		for _, a := range algs {
			if keyFits(a, nil) == errUnsupportedAlg {
				return nil, fmt.Errorf("oidc: algorithm %q not supported", a)
			}
			pp.algs[a] = true
		}
		v.providers[p.Issuer] = pp
	}
	return v, nil
}

// Issuers lists the configured issuers.
func (v *Verifier) Issuers() []string {
	out := make([]string, 0, len(v.providers))
	for k := range v.providers {
		out = append(out, k)
	}
	return out
}

// Verify checks a token and returns its claims: shape, algorithm, issuer,
// key, signature, then exp/nbf/iat and audience. Any failure is an *Error.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	t, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if keyFits(t.Header.Alg, nil) == errUnsupportedAlg {
		return nil, fail(CodeAlgNotAllowed, "alg not accepted")
	}
	p, ok := v.providers[t.Claims.Issuer]
	if !ok {
		return nil, fail(CodeUnknownIssuer, "issuer not trusted")
	}
	if !p.algs[t.Header.Alg] {
		return nil, fail(CodeAlgNotAllowed, "alg not accepted for this issuer")
	}
	keys, err := p.candidates(ctx, t.Header)
	if err != nil {
		return nil, err
	}
	if err := VerifySignature(raw, t.Header.Alg, keys); err != nil {
		return nil, err
	}
	c := &t.Claims
	now := v.opts.Now()
	if c.Expiry == 0 || !now.Before(c.Expiry.Time().Add(v.opts.Leeway)) {
		return nil, fail(CodeExpired, "token expired")
	}
	if c.NotBefore != 0 && now.Add(v.opts.Leeway).Before(c.NotBefore.Time()) {
		return nil, fail(CodeNotYetValid, "token not valid yet (nbf)")
	}
	if c.IssuedAt != 0 && now.Add(v.opts.Leeway).Before(c.IssuedAt.Time()) {
		return nil, fail(CodeNotYetValid, "token issued in the future (iat)")
	}
	if m := p.cfg.MaxLifetime; m > 0 {
		start := c.IssuedAt
		if start == 0 {
			start = c.NotBefore
		}
		if start == 0 || c.Expiry.Time().Sub(start.Time()) > m {
			return nil, fail(CodeLifetime, "token lifetime above the issuer's bound")
		}
	}
	audOK := false
	for _, a := range p.cfg.Audience {
		if c.Audience.Contains(a) {
			audOK = true
			break
		}
	}
	if !audOK {
		return nil, fail(CodeWrongAudience, "audience does not name this server")
	}
	return c, nil
}

// candidates returns the provider keys that may have signed a token with
// this header: the kid's key (refetching the JWKS once, rate-limited, when
// the kid is unknown, which is how rotation is picked up), or every key
// fitting alg when the token has no kid.
func (p *provider) candidates(ctx context.Context, h Header) ([]jose.JSONWebKey, error) {
	now := p.opts.Now()
	p.mu.RLock()
	stale := p.fetched.IsZero() || now.Sub(p.fetched) > p.opts.MaxAge
	p.mu.RUnlock()
	if stale {
		if err := p.refresh(ctx, false); err != nil {
			p.mu.RLock()
			have := len(p.keys) > 0
			p.mu.RUnlock()
			if !have {
				return nil, err
			}
			// A provider briefly down: keep using the keys we have.
		}
	}
	out, fitErr := p.lookup(h)
	if len(out) == 0 && fitErr == nil && h.Kid != "" {
		if err := p.refresh(ctx, true); err != nil && CodeOf(err) != CodeUnknownKey {
			return nil, err
		}
		out, fitErr = p.lookup(h)
	}
	if fitErr != nil {
		return nil, fitErr
	}
	if len(out) == 0 {
		return nil, fail(CodeUnknownKey, "no provider key has the token's kid")
	}
	return out, nil
}

func (p *provider) lookup(h Header) ([]jose.JSONWebKey, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return SelectKeys(h, p.keys)
}

// SelectKeys returns the keys of a set that may have signed a token with
// header h: the key named by kid (an error when its type or alg does not fit
// h.Alg: an HS256 token "signed" with an RSA public key's bytes is refused
// here), or, without kid, every key fitting alg. None: an empty slice.
func SelectKeys(h Header, keys []jose.JSONWebKey) ([]jose.JSONWebKey, error) {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if h.Kid != "" {
			if k.KeyID != h.Kid {
				continue
			}
			if err := keyFits(h.Alg, k.Key); err != nil {
				return nil, fail(CodeKeyMismatch, "key type does not fit alg")
			}
			if k.Algorithm != "" && k.Algorithm != h.Alg {
				return nil, fail(CodeKeyMismatch, "key is bound to another alg")
			}
			return []jose.JSONWebKey{k}, nil
		}
		if keyFits(h.Alg, k.Key) == nil && (k.Algorithm == "" || k.Algorithm == h.Alg) {
			out = append(out, k)
		}
	}
	return out, nil
}

// VerifySignature checks the signature of raw (whose header alg must be
// accepted, see AlgAccepted) against candidate keys (SelectKeys).
func VerifySignature(raw string, alg string, keys []jose.JSONWebKey) error {
	if keyFits(alg, nil) != nil {
		return fail(CodeAlgNotAllowed, "alg not accepted")
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return &Error{Code: CodeMalformed, Detail: "not a compact JWS", Err: err}
	}
	for _, k := range keys {
		if _, err := jws.Verify(k.Key); err == nil {
			return nil
		}
	}
	return fail(CodeBadSignature, "signature does not verify")
}

// AlgAccepted reports whether alg is one this package can verify (RS*, PS*,
// ES*, EdDSA; never none or HS*).
func AlgAccepted(alg string) bool { return keyFits(alg, nil) == nil }

// refresh fetches discovery (once) and the JWKS. forced fetches (unknown
// kid) happen at most once per RefetchInterval.
func (p *provider) refresh(ctx context.Context, forced bool) error {
	p.fetch.Lock()
	defer p.fetch.Unlock()
	now := p.opts.Now()
	p.mu.RLock()
	attempted, fetched := p.attempted, p.fetched
	p.mu.RUnlock()
	if !attempted.IsZero() && now.Sub(attempted) < p.opts.RefetchInterval {
		switch {
		case forced:
			return fail(CodeUnknownKey, "JWKS refetch rate-limited")
		case fetched.IsZero():
			return fail(CodeProviderFailure, "provider unavailable (retry rate-limited)")
		case now.Sub(fetched) <= p.opts.MaxAge:
			return nil // another caller refreshed meanwhile
		}
		return nil // stale, retried recently: keep the keys we have
	}
	p.mu.Lock()
	p.attempted = now
	jwksURL := p.jwksURL
	p.mu.Unlock()
	if jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := p.getJSON(ctx, strings.TrimSuffix(p.cfg.Issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
			return err
		}
		if doc.Issuer != p.cfg.Issuer || doc.JWKSURI == "" {
			return fail(CodeProviderFailure, "discovery document names another issuer or no jwks_uri")
		}
		jwksURL = doc.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := p.getJSON(ctx, jwksURL, &set); err != nil {
		return err
	}
	var keys []jose.JSONWebKey
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue // private or encryption keys have no place in a verifier
		}
		keys = append(keys, k)
	}
	p.mu.Lock()
	p.jwksURL, p.keys, p.fetched = jwksURL, keys, now
	p.mu.Unlock()
	return nil
}

func (p *provider) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &Error{Code: CodeProviderFailure, Detail: "bad provider URL", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.opts.HTTPClient.Do(req)
	if err != nil {
		return &Error{Code: CodeProviderFailure, Detail: "provider unreachable", Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(CodeProviderFailure, fmt.Sprintf("provider answered %d", resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &Error{Code: CodeProviderFailure, Detail: "provider read failed", Err: err}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &Error{Code: CodeProviderFailure, Detail: "provider answered malformed JSON", Err: err}
	}
	return nil
}

var errUnsupportedAlg = errors.New("unsupported alg")

// keyFits reports whether key (a public key; nil only checks alg is known)
// is of the type alg needs.
func keyFits(alg string, key any) error {
	var ok bool
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		if key == nil {
			return nil
		}
		k, isRSA := key.(*rsa.PublicKey)
		ok = isRSA && k.N.BitLen() >= 2048
	case "ES256", "ES384", "ES512":
		if key == nil {
			return nil
		}
		k, isEC := key.(*ecdsa.PublicKey)
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		ok = isEC && k.Curve == want
	case "EdDSA":
		if key == nil {
			return nil
		}
		_, ok = key.(ed25519.PublicKey)
	default:
		return errUnsupportedAlg
	}
	if !ok {
		return errors.New("key type does not fit alg")
	}
	return nil
}
