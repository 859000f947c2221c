package authserver

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"phix/access/roles"
)

// family is one grant's chain of refresh tokens: each use rotates the
// token; all share the family's scope, launch context and absolute expiry.
type family struct {
	id, scope         string
	launch            LaunchContext
	authTime, expires time.Time
}

// maxRefreshTokenLen bounds what is hashed and looked up (ours are 43).
const maxRefreshTokenLen = 128

func refreshID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// userTokens answers a user's grant (authorization code or refresh): the
// access token, the launch context, an ID token for openid, and a refresh
// token when offline_access or online_access was granted (a new family for
// a code, the next token of fam for a refresh). accessScope may be
// narrower than the family's.
func (s *Server) userTokens(ctx context.Context, c *Client, userName, accessScope string, lc LaunchContext, nonce string, authTime time.Time, fam *family) (map[string]any, error) {
	u, err := s.User(ctx, userName)
	if err != nil || u.Disabled {
		return nil, oerr(http.StatusBadRequest, "invalid_grant", "user no longer exists or is disabled")
	}
	if _, err := roles.Parse(u.Roles); err != nil {
		return nil, oerr(http.StatusBadRequest, "invalid_grant", "user roles violate separation of duties")
	}
	sc, err := parseScopes(accessScope)
	if err != nil {
		return nil, oerr(http.StatusBadRequest, "invalid_scope", "scope does not parse")
	}
	if fam == nil {
		var life time.Duration
		switch {
		case sc.Has("offline_access"):
			life = s.cfg.RefreshLifetime
		case sc.Has("online_access"):
			life = s.cfg.OnlineRefreshLifetime
		}
		if life > 0 {
			fam = &family{id: randomID(), scope: accessScope, launch: lc, authTime: authTime, expires: s.now().Add(life)}
		}
	}
	famID := ""
	if fam != nil {
		famID = fam.id // the access token goes with its family when that is revoked
	}
	tok, exp, err := s.issue(ctx, Principal{Subject: u.Name, ClientID: c.ID, Scope: accessScope, Roles: u.Roles, Org: u.Org,
		Purpose: u.Purpose, FHIRUser: u.FHIRUser, Patient: lc.Patient, Encounter: lc.Encounter}, u.Name, famID)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": exp, "scope": accessScope}
	if u.FHIRUser != "" {
		out["fhirUser"] = u.FHIRUser
	}
	lc.addTo(out)
	if sc.Has("openid") {
		idt, err := s.idToken(u, c.ID, sc, nonce, authTime)
		if err != nil {
			return nil, err
		}
		out["id_token"] = idt
	}
	if fam != nil {
		rt := randomID()
		if _, err := s.db.ExecContext(ctx, `INSERT INTO as_refresh (id, family, client, subject, scope, patient, launch, auth_time, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			refreshID(rt), fam.id, c.ID, u.Name, fam.scope, fam.launch.Patient, fam.launch.extra(), fam.authTime.Unix(), fam.expires.Unix()); err != nil {
			return nil, err
		}
		out["refresh_token"] = rt
	}
	// A revocation or disable that raced this grant: refuse rather than hand
	// out tokens that the revocation list may have missed.
	if err := s.stillGranted(ctx, c.ID, u.Name, famID); err != nil {
		return nil, err
	}
	return out, nil
}

// refreshToken redeems a refresh token (RFC 6749 section 6, with the
// rotation and reuse detection of the OAuth 2.0 Security BCP): it is bound
// to the client it was issued to, single use, and a second use of any
// token of a family revokes the whole family, the legitimate holder's
// current token included. scope may narrow the grant, never widen it.
func (s *Server) refreshToken(ctx context.Context, r *http.Request) (map[string]any, error) {
	c, err := s.authenticateClient(ctx, r, false)
	if err != nil {
		return nil, err
	}
	bad := oerr(http.StatusBadRequest, "invalid_grant", "refresh token unknown, expired, revoked or already used")
	rt := r.PostForm.Get("refresh_token")
	if rt == "" || len(rt) > maxRefreshTokenLen {
		return nil, bad
	}
	id := refreshID(rt)
	now := s.now()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM as_refresh WHERE expires < $1`, now.Unix()); err != nil {
		return nil, err
	}
	var fam family
	var client, subject, patient, extra string
	var authTime, expires, used, revoked int64
	err = s.db.QueryRowContext(ctx, `SELECT family, client, subject, scope, patient, launch, auth_time, expires, used, revoked FROM as_refresh WHERE id = $1`, id).
		Scan(&fam.id, &client, &subject, &fam.scope, &patient, &extra, &authTime, &expires, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	fam.authTime, fam.expires = time.Unix(authTime, 0), time.Unix(expires, 0)
	fam.launch = launchFromColumns(patient, extra)
	if revoked != 0 || !now.Before(fam.expires) {
		return nil, bad
	}
	if client != c.ID {
		// The token left its client: nothing of that family is safe.
		s.revokeFamily(ctx, fam.id, "refresh token presented by another client; family revoked", c.ID)
		return nil, bad
	}
	if used != 0 {
		s.revokeFamily(ctx, fam.id, "refresh token reused; family revoked", c.ID)
		return nil, bad
	}
	// The scope is checked before the token is marked used: a refused request does not burn the token.
	scope := fam.scope
	if req := r.PostForm.Get("scope"); req != "" {
		want, err := parseScopes(req)
		if err != nil {
			return nil, oerr(http.StatusBadRequest, "invalid_scope", "scope does not parse")
		}
		have, _ := parseScopes(fam.scope)
		if !have.Covers(want) {
			return nil, oerr(http.StatusBadRequest, "invalid_scope", "requested scope exceeds the original grant")
		}
		scope = want.String()
	}
	// Single use: of concurrent redemptions exactly one marks it used.
	res, err := s.db.ExecContext(ctx, `UPDATE as_refresh SET used = $1 WHERE id = $2 AND used = 0 AND revoked = 0`, now.Unix(), id)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		s.revokeFamily(ctx, fam.id, "refresh token reused; family revoked", c.ID)
		return nil, bad
	}
	return s.userTokens(ctx, c, subject, scope, fam.launch, "", fam.authTime, &fam)
}

// revokeFamily revokes every refresh token of a family, and the access
// tokens issued from it, and logs why (the client id only: no token, no
// user).
func (s *Server) revokeFamily(ctx context.Context, fam, why, client string) {
	if err := s.revokeChain(ctx, fam); err != nil {
		s.cfg.Logger.Error("refresh family revocation failed", "client", client, "err", err)
		return
	}
	s.cfg.Logger.Warn(why, "client", client)
}

// revokeChain revokes a refresh family: its refresh tokens first, then
// the access tokens issued from it go on the revocation list (in this
// order: see stillGranted).
func (s *Server) revokeChain(ctx context.Context, fam string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE as_refresh SET revoked = 1 WHERE family = $1`, fam); err != nil {
		return err
	}
	return revokeIssued(ctx, s.db, s.now(), issuedByFamily, fam)
}
