package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"time"

	"phix/auth/oidc"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// MaxAssertionLifetime bounds a client assertion's exp (SMART: 5 minutes).
const MaxAssertionLifetime = 5 * time.Minute

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, oerr(http.StatusBadRequest, "invalid_request", "body must be application/x-www-form-urlencoded"))
		return
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			writeOAuthError(w, oerr(http.StatusBadRequest, "invalid_request", "parameter "+safeName(k)+" given more than once"))
			return
		}
	}
	var resp map[string]any
	var err error
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		resp, err = s.clientCredentials(r.Context(), r)
	case "authorization_code":
		resp, err = s.authorizationCode(r.Context(), r)
	case "refresh_token":
		resp, err = s.refreshToken(r.Context(), r)
	case "":
		err = oerr(http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		err = oerr(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code, refresh_token or client_credentials")
	}
	if err != nil {
		writeOAuthError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// safeName returns a parameter name for an error only when it is short and
// plain; otherwise a placeholder (error texts never echo arbitrary input).
func safeName(k string) string {
	if len(k) > 32 {
		return "(parameter)"
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "(parameter)"
		}
	}
	return k
}

// clientCredentials is SMART Backend Services: the client proves itself
// with a private_key_jwt assertion and is granted the requested scopes when
// they are within its registration.
func (s *Server) clientCredentials(ctx context.Context, r *http.Request) (map[string]any, error) {
	c, err := s.authenticateClient(ctx, r, true)
	if err != nil {
		return nil, err
	}
	if !c.ClientCredentials {
		return nil, oerr(http.StatusBadRequest, "unauthorized_client", "client may not use client_credentials")
	}
	scope, err := s.grantScope(c, r.PostForm.Get("scope"))
	if err != nil {
		return nil, err
	}
	tok, exp, err := s.issue(ctx, Principal{Subject: c.ID, ClientID: c.ID, Scope: scope, Roles: c.Roles, Org: c.Org, Purpose: c.Purpose}, "", "")
	if err != nil {
		return nil, err
	}
	if err := s.stillGranted(ctx, c.ID, "", ""); err != nil {
		return nil, err
	}
	return map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": exp, "scope": scope}, nil
}

// grantScope refuses any requested scope outside the client's registered
// scope (no silent narrowing: an escalation attempt is an error). The
// grant is exactly what was requested.
func (s *Server) grantScope(c *Client, requested string) (string, error) {
	if requested == "" {
		return "", oerr(http.StatusBadRequest, "invalid_scope", "scope is required")
	}
	req, err := parseScopes(requested)
	if err != nil {
		return "", oerr(http.StatusBadRequest, "invalid_scope", "scope does not parse: "+err.Error())
	}
	allowed, err := parseScopes(c.Scope)
	if err != nil || !allowed.Covers(req) {
		return "", oerr(http.StatusBadRequest, "invalid_scope", "requested scope exceeds the client's registration")
	}
	return req.String(), nil
}

// authenticateClient checks the client assertion (private_key_jwt) or,
// when required is false and the client is public, its client_id alone.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, required bool) (*Client, error) {
	f := r.PostForm
	if f.Get("client_assertion") == "" {
		if required {
			return nil, oerr(http.StatusUnauthorized, "invalid_client", "client_assertion (private_key_jwt) is required")
		}
		c, err := s.Client(ctx, f.Get("client_id"))
		if err != nil || c.Disabled {
			return nil, oerr(http.StatusUnauthorized, "invalid_client", "unknown client")
		}
		if c.JWKS != nil && len(c.JWKS.Keys) > 0 {
			return nil, oerr(http.StatusUnauthorized, "invalid_client", "confidential client must authenticate with client_assertion")
		}
		return c, nil
	}
	if f.Get("client_assertion_type") != assertionType {
		return nil, oerr(http.StatusBadRequest, "invalid_request", "client_assertion_type must be jwt-bearer")
	}
	c, err := s.VerifyAssertion(ctx, f.Get("client_assertion"))
	if err != nil {
		return nil, err
	}
	if id := f.Get("client_id"); id != "" && id != c.ID {
		return nil, oerr(http.StatusUnauthorized, "invalid_client", "client_id does not match the assertion")
	}
	return c, nil
}

// VerifyAssertion checks a private_key_jwt client assertion: alg RS384,
// ES384 or EdDSA; iss = sub = a registered client; signed by one of its
// keys; aud = the token endpoint; exp present, in the future, at most 5
// minutes ahead; jti never seen before (kept until exp, persisted). A client
// locked out by repeated failures is refused.
func (s *Server) VerifyAssertion(ctx context.Context, raw string) (*Client, error) {
	bad := func(d string) error { return oerr(http.StatusUnauthorized, "invalid_client", d) }
	p, err := oidc.Parse(raw)
	if err != nil {
		return nil, bad("client assertion malformed")
	}
	if !slices.Contains(assertionAlgs, p.Header.Alg) {
		return nil, bad("client assertion alg must be RS384, ES384 or EdDSA")
	}
	cl := &p.Claims
	if cl.Issuer == "" || cl.Issuer != cl.Subject {
		return nil, bad("client assertion iss and sub must both be the client id")
	}
	lockKey := "client:" + cl.Issuer
	if err := s.cfg.Lockout.Check(ctx, lockKey); err != nil {
		return nil, bad("client locked out after repeated failures")
	}
	c, err := s.Client(ctx, cl.Issuer)
	if err != nil || c.JWKS == nil || c.Disabled {
		return nil, bad("unknown client or client without keys")
	}
	failed := func(d string) error {
		_, _ = s.cfg.Lockout.Failure(ctx, lockKey)
		return bad(d)
	}
	keys, err := oidc.SelectKeys(p.Header, c.JWKS.Keys)
	if err != nil || len(keys) == 0 {
		return nil, failed("no registered key of the client fits the assertion")
	}
	if err := oidc.VerifySignature(raw, p.Header.Alg, keys); err != nil {
		return nil, failed("client assertion signature does not verify")
	}
	if !cl.Audience.Contains(s.TokenURL()) {
		return nil, failed("client assertion aud must be the token endpoint")
	}
	now := s.now()
	exp := cl.Expiry.Time()
	if cl.Expiry == 0 || !now.Before(exp) {
		return nil, failed("client assertion expired")
	}
	if exp.Sub(now) > MaxAssertionLifetime+30*time.Second {
		return nil, failed("client assertion exp more than 5 minutes ahead")
	}
	if cl.ID == "" || len(cl.ID) > 256 {
		return nil, failed("client assertion needs a jti")
	}
	replay, err := s.seenJTI(ctx, c.ID, cl.ID, exp)
	if err != nil {
		return nil, err
	}
	if replay {
		return nil, failed("client assertion jti already used")
	}
	s.cfg.Lockout.Success(lockKey)
	return c, nil
}

// authorizationCode redeems a code: single use, within its lifetime, for
// the same client and redirect_uri, with the PKCE verifier whose S256
// digest is the challenge.
func (s *Server) authorizationCode(ctx context.Context, r *http.Request) (map[string]any, error) {
	f := r.PostForm
	c, err := s.authenticateClient(ctx, r, false)
	if err != nil {
		return nil, err
	}
	s.flows.Lock()
	g, ok := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code")) // single use, whatever happens next
	s.flows.Unlock()
	if !ok || s.now().After(g.expires) {
		return nil, oerr(http.StatusBadRequest, "invalid_grant", "code unknown, used or expired")
	}
	if g.clientID != c.ID || g.redirectURI != f.Get("redirect_uri") {
		return nil, oerr(http.StatusBadRequest, "invalid_grant", "code was issued to another client or redirect_uri")
	}
	v := f.Get("code_verifier")
	if len(v) < 43 || len(v) > 128 {
		return nil, oerr(http.StatusBadRequest, "invalid_grant", "code_verifier must have 43..128 characters")
	}
	sum := sha256.Sum256([]byte(v))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1 {
		return nil, oerr(http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
	}
	return s.userTokens(ctx, c, g.user, g.scope, g.launch, g.nonce, g.authTime, nil)
}
