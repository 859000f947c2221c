package authserver

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"phix/auth/oidc"
	"phix/internal/periodic"
)

// revokedGrace is how long past its exp a revoked access token's jti is
// kept: verifiers accept a token up to 30 s after exp (clock leeway), so
// the revocation must outlive that.
const revokedGrace = 60 * time.Second

// verifierLeeway is the clock leeway of auth/oidc verifiers; introspection
// and userinfo use the same for nbf and iat, none for exp.
const verifierLeeway = 30 * time.Second

// maxEndpointBody bounds the body of /revoke and /introspect.
const maxEndpointBody = 64 << 10

// ParseEndpointForm parses the request of the revocation and introspection
// endpoints (RFC 7009 2.1, RFC 7662 2.1): an application/x-www-form-
// urlencoded body of at most 64 KiB, no parameter in the URL (a token in a
// query string ends up in access logs) and none given twice. Errors are
// invalid_request and never quote input.
func ParseEndpointForm(contentType, rawQuery string, body []byte) (url.Values, error) {
	bad := func(d string) error { return oerr(http.StatusBadRequest, "invalid_request", d) }
	if rawQuery != "" {
		return nil, bad("parameters belong in the request body, not the URL")
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, bad("body must be application/x-www-form-urlencoded")
	}
	if len(body) > maxEndpointBody {
		return nil, bad("body too large")
	}
	f, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, bad("body is not a valid form")
	}
	for k, v := range f {
		if len(v) > 1 {
			return nil, bad("parameter " + safeName(k) + " given more than once")
		}
	}
	return f, nil
}

// endpointForm reads and parses the form of r into r.PostForm (where
// authenticateClient looks).
func endpointForm(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return oerr(http.StatusBadRequest, "invalid_request", "body too large or unreadable")
	}
	f, err := ParseEndpointForm(r.Header.Get("Content-Type"), r.URL.RawQuery, body)
	if err != nil {
		return err
	}
	r.PostForm, r.Form = f, f
	return nil
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxEndpointBody))
}

// isJWT tells the two kinds of token apart by their form: access tokens
// are compact JWS (three dot-separated parts), refresh tokens opaque
// base64url strings without dots. So token_type_hint is never needed; it
// is accepted and, as RFC 7009 2.1 allows, ignored (an unknown value too).
func isJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// ownAccessToken checks that raw is an access token of this server: a
// JWS with typ at+jwt (ID tokens, typ JWT, are not access tokens) signed
// by one of its published keys, with this issuer and audience. Times are
// left to the caller. It returns nil for anything else.
func (s *Server) ownAccessToken(raw string) *oidc.Claims {
	p, err := oidc.Parse(raw)
	if err != nil || !strings.EqualFold(p.Header.Typ, "at+jwt") || !oidc.AlgAccepted(p.Header.Alg) {
		return nil
	}
	keys, err := oidc.SelectKeys(p.Header, s.JWKS().Keys)
	if err != nil || len(keys) == 0 || oidc.VerifySignature(raw, p.Header.Alg, keys) != nil {
		return nil
	}
	c := &p.Claims
	if c.Issuer != s.cfg.Issuer || !c.Audience.Contains(s.cfg.Audience) || c.ID == "" || c.ClientID == "" || c.Expiry == 0 {
		return nil
	}
	return c
}

// serveRevoke is RFC 7009 token revocation. The client authenticates as
// at the token endpoint (public: client_id; confidential: assertion). A
// refresh token revokes its whole family (every rotation of the grant); an
// access token's jti joins the revocation list until its exp. Unknown,
// expired, already revoked and other clients' tokens answer 200 and change
// nothing: the answer reveals nothing about a token. The access tokens
// issued from a revoked family join the revocation list too (issued.go).
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	c, tok, ok := s.tokenForm(w, r, false)
	if !ok {
		return
	}
	ctx := r.Context()
	var err error
	if isJWT(tok) {
		err = s.revokeAccess(ctx, c, tok)
	} else {
		err = s.revokeRefresh(ctx, c, tok)
	}
	if err != nil {
		s.cfg.Logger.Error("token revocation failed", "client", c.ID, "err", err)
		writeOAuthError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revokeAccess(ctx context.Context, c *Client, raw string) error {
	cl := s.ownAccessToken(raw)
	if cl == nil {
		return nil // not ours, or not a token at all: nothing to revoke
	}
	if cl.ClientID != c.ID {
		s.cfg.Logger.Warn("revocation of another client's access token ignored", "client", c.ID)
		return nil
	}
	now := s.now()
	exp := cl.Expiry.Time()
	if now.After(exp.Add(revokedGrace)) {
		return nil // no verifier accepts it any more
	}
	if err := purgeRevoked(ctx, s.db, now); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO as_revoked (jti, exp) VALUES ($1, $2) ON CONFLICT DO NOTHING`, cl.ID, exp.Unix()); err != nil {
		return err
	}
	s.cfg.Logger.Info("access token revoked", "client", c.ID)
	return nil
}

func (s *Server) revokeRefresh(ctx context.Context, c *Client, rt string) error {
	if len(rt) > maxRefreshTokenLen {
		return nil
	}
	var fam, client string
	err := s.db.QueryRowContext(ctx, `SELECT family, client FROM as_refresh WHERE id = $1`, refreshID(rt)).Scan(&fam, &client)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if client != c.ID {
		s.cfg.Logger.Warn("revocation of another client's refresh token ignored", "client", c.ID)
		return nil
	}
	if err := s.revokeChain(ctx, fam); err != nil {
		return err
	}
	s.cfg.Logger.Info("refresh token revoked with its family and their access tokens", "client", c.ID)
	return nil
}

// accessRevoked reports whether the access token jti is revoked (the
// authorization server's own, authoritative lookup).
func (s *Server) accessRevoked(ctx context.Context, jti string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM as_revoked WHERE jti = $1`, jti).Scan(&n)
	return n > 0, err
}

// activeAccess checks an access token of this server as introspection and
// userinfo see it: within its times (exp strictly, nbf and iat with the
// verifiers' leeway, a lifetime of at most MaxTokenLifetime), not revoked,
// its client and user still enabled. It returns nil when inactive.
func (s *Server) activeAccess(ctx context.Context, raw string) (*oidc.Claims, error) {
	c := s.ownAccessToken(raw)
	if c == nil {
		return nil, nil
	}
	now := s.now()
	exp, iat, nbf := c.Expiry.Time(), c.IssuedAt.Time(), c.NotBefore.Time()
	if !now.Before(exp) || iat.IsZero() || iat.After(now.Add(verifierLeeway)) || (!nbf.IsZero() && nbf.After(now.Add(verifierLeeway))) ||
		exp.Sub(iat) > MaxTokenLifetime {
		return nil, nil
	}
	if revoked, err := s.accessRevoked(ctx, c.ID); err != nil || revoked {
		return nil, err
	}
	cl, err := s.Client(ctx, c.ClientID)
	if errors.Is(err, errUnknownClient) || err == nil && cl.Disabled {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c.Subject != c.ClientID {
		u, err := s.User(ctx, c.Subject)
		if errors.Is(err, errUnknownUser) || err == nil && u.Disabled {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// RevokedTokens is a resource server's view of the access tokens revoked
// at the authorization server (the as_revoked table of the shared auth
// store): the whole list, which only holds tokens still within their
// lifetime (≤ 300 s plus a minute), re-read at most every RefreshEvery.
// A revocation thus takes effect on every replica within RefreshEvery,
// for one query per interval per replica instead of one per request. When
// the list cannot be re-read the check fails (the caller refuses the
// token): a revocation must not be missed because the store is down.
type RevokedTokens struct {
	db *sql.DB
	// RefreshEvery is the longest a revocation takes to be seen (default 2 s).
	RefreshEvery time.Duration
	Now          func() time.Time

	list *periodic.Value[map[string]struct{}]
}

// NewRevokedTokens returns the revocation list over the auth store (Migrate
// must have run).
func NewRevokedTokens(db *sql.DB) *RevokedTokens {
	rt := &RevokedTokens{db: db}
	rt.list = periodic.New(func(ctx context.Context, now time.Time) (map[string]struct{}, error) {
		ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		defer cancel()
		return rt.load(ctx, now)
	})
	return rt
}

// refreshTimeout bounds one read of the list.
const refreshTimeout = 5 * time.Second

// Revoked reports whether the access token with this jti was revoked, as
// of at most RefreshEvery ago. An error means the list could not be read.
func (rt *RevokedTokens) Revoked(ctx context.Context, jti string) (bool, error) {
	now := time.Now()
	if rt.Now != nil {
		now = rt.Now()
	}
	every := rt.RefreshEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	set, err := rt.list.Get(ctx, now, every)
	if err != nil {
		return false, err
	}
	_, revoked := set[jti]
	return revoked, nil
}

func (rt *RevokedTokens) load(ctx context.Context, now time.Time) (map[string]struct{}, error) {
	rows, err := rt.db.QueryContext(ctx, `SELECT jti FROM as_revoked WHERE exp >= $1`, now.Add(-revokedGrace).Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := map[string]struct{}{}
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, err
		}
		set[j] = struct{}{}
	}
	return set, rows.Err()
}

// tokenForm reads the form of /revoke and /introspect: the authenticated
// client (confidential: a client must authenticate with its keys) and the
// token. On a bad request it has answered already and ok is false.
func (s *Server) tokenForm(w http.ResponseWriter, r *http.Request, confidential bool) (c *Client, tok string, ok bool) {
	if err := endpointForm(w, r); err != nil {
		writeOAuthError(w, err)
		return nil, "", false
	}
	c, err := s.authenticateClient(r.Context(), r, confidential)
	if err != nil {
		writeOAuthError(w, err)
		return nil, "", false
	}
	if tok = r.PostForm.Get("token"); tok == "" {
		writeOAuthError(w, oerr(http.StatusBadRequest, "invalid_request", "token is required"))
		return nil, "", false
	}
	return c, tok, true
}
