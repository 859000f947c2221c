package authserver

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"time"

	"phix/internal/bearer"
)

// serveIntrospect is RFC 7662 token introspection. Only a confidential
// client may call it (private_key_jwt assertion; a public client or a bad
// assertion is 401 invalid_client), so the endpoint is no oracle for
// guessed tokens. A client sees its own tokens; a client registered with
// Introspect (a resource server) sees every token of this server. Anything
// else — unknown, malformed, expired, revoked, used, another client's, a
// disabled client's or user's — is {"active": false} and nothing more.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	caller, tok, ok := s.tokenForm(w, r, true)
	if !ok {
		return
	}
	ctx := r.Context()
	var resp map[string]any
	var err error
	if isJWT(tok) {
		resp, err = s.introspectAccess(ctx, caller, tok)
	} else {
		resp, err = s.introspectRefresh(ctx, caller, tok)
	}
	if err != nil {
		s.cfg.Logger.Error("token introspection failed", "client", caller.ID, "err", err)
		writeOAuthError(w, err)
		return
	}
	if resp == nil {
		resp = map[string]any{"active": false}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) introspectAccess(ctx context.Context, caller *Client, raw string) (map[string]any, error) {
	c, err := s.activeAccess(ctx, raw)
	if err != nil || c == nil {
		return nil, err
	}
	if !caller.Introspect && c.ClientID != caller.ID {
		return nil, nil
	}
	out := map[string]any{"active": true, "token_type": "Bearer", "scope": c.Scope, "client_id": c.ClientID, "sub": c.Subject,
		"iss": c.Issuer, "aud": s.cfg.Audience, "exp": c.Expiry.Time().Unix(), "iat": c.IssuedAt.Time().Unix(), "jti": c.ID}
	if c.NotBefore != 0 {
		out["nbf"] = c.NotBefore.Time().Unix()
	}
	if c.Subject != c.ClientID {
		out["username"] = c.Subject
	}
	for _, k := range []string{"patient", "encounter", "fhirUser"} {
		if v := c.String(k); v != "" {
			out[k] = v
		}
	}
	return out, nil
}

func (s *Server) introspectRefresh(ctx context.Context, caller *Client, rt string) (map[string]any, error) {
	if len(rt) > maxRefreshTokenLen {
		return nil, nil
	}
	var client, subject, scope, patient, extra string
	var authTime, expires, used, revoked int64
	err := s.db.QueryRowContext(ctx, `SELECT client, subject, scope, patient, launch, auth_time, expires, used, revoked FROM as_refresh WHERE id = $1`, refreshID(rt)).
		Scan(&client, &subject, &scope, &patient, &extra, &authTime, &expires, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if used != 0 || revoked != 0 || !s.now().Before(time.Unix(expires, 0)) || (!caller.Introspect && client != caller.ID) {
		return nil, nil
	}
	if c, err := s.Client(ctx, client); err != nil || c.Disabled {
		return nil, nilUnlessStore(err, errUnknownClient)
	}
	u, err := s.User(ctx, subject)
	if err != nil || u.Disabled {
		return nil, nilUnlessStore(err, errUnknownUser)
	}
	out := map[string]any{"active": true, "scope": scope, "client_id": client, "sub": subject, "username": subject,
		"iss": s.cfg.Issuer, "exp": expires, "auth_time": authTime}
	lc := launchFromColumns(patient, extra)
	if lc.Patient != "" {
		out["patient"] = lc.Patient
	}
	if lc.Encounter != "" {
		out["encounter"] = lc.Encounter
	}
	if sc, err := parseScopes(scope); err == nil && sc.Has("fhirUser") && u.FHIRUser != "" {
		out["fhirUser"] = u.FHIRUser
	}
	return out, nil
}

// nilUnlessStore drops the "not found" error (the token is then merely
// inactive) and keeps a store failure.
func nilUnlessStore(err, notFound error) error {
	if err == nil || errors.Is(err, notFound) {
		return nil
	}
	return err
}

// serveUserinfo is the OpenID Connect UserInfo endpoint (GET or POST, the
// access token in the Authorization header only: RFC 6750 2.1). The token
// must be an active access token of this server (as introspection sees it:
// revocation and disabled users count at once) of a user, granted openid.
// It answers sub; fhirUser (the absolute URL, as in the ID token) when the
// fhirUser scope was granted; preferred_username and name only with the
// profile scope.
func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	tok, ok := bearer.Token(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="phix"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "a bearer access token is required"})
		return
	}
	invalid := func() {
		w.Header().Set("WWW-Authenticate", `Bearer realm="phix", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "the access token is not valid"})
	}
	ctx := r.Context()
	c, err := s.activeAccess(ctx, tok)
	if err != nil {
		s.cfg.Logger.Error("userinfo failed", "err", err)
		writeOAuthError(w, err)
		return
	}
	if c == nil || c.Subject == c.ClientID {
		invalid() // inactive, or a machine client's token: no user to describe
		return
	}
	sc, err := parseScopes(c.Scope)
	if err != nil || !sc.Has("openid") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="phix", error="insufficient_scope", scope="openid"`)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "the token was not granted openid"})
		return
	}
	u, err := s.User(ctx, c.Subject)
	if err != nil {
		if errors.Is(err, errUnknownUser) {
			invalid()
			return
		}
		writeOAuthError(w, err)
		return
	}
	out := map[string]any{"sub": u.Name}
	if sc.Has("fhirUser") && u.FHIRUser != "" {
		out["fhirUser"] = strings.TrimSuffix(s.cfg.Audience, "/") + "/" + u.FHIRUser
	}
	if sc.Has("profile") {
		out["preferred_username"] = u.Name
		if u.DisplayName != "" {
			out["name"] = u.DisplayName
		}
	}
	writeJSON(w, http.StatusOK, out)
}
