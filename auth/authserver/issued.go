package authserver

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"time"
)

// Issued access tokens are recorded (as_issued: jti, exp, client, user,
// refresh family) so that revoking a refresh chain or disabling a user or
// client can put the access tokens already out on the revocation list
// (as_revoked), which every FHIR replica re-reads (RevokedTokens). Without
// the record those tokens would stay usable at the FHIR server until their
// exp (≤ 300 s). Rows are purged once the token is past exp plus
// revokedGrace, as as_revoked rows are.

// recordIssued records an issued access token. user is the user's name
// ("" for a client's own, client_credentials, token); family is the refresh
// family it was issued from or with ("" for none). Rows past exp are
// purged first, at most once a minute: the purge is not on every grant,
// and revokeIssued skips expired rows anyway.
func (s *Server) recordIssued(ctx context.Context, jti string, exp time.Time, client, user, family string) error {
	now := s.now()
	if last := s.issuedPurged.Load(); now.Unix()-last >= 60 || now.Unix() < last {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM as_issued WHERE exp < $1`, now.Add(-revokedGrace).Unix()); err != nil {
			return err
		}
		s.issuedPurged.Store(now.Unix())
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO as_issued (jti, exp, client, subject, family) VALUES ($1, $2, $3, $4, $5)`,
		jti, exp.Unix(), client, user, family)
	return err
}

// revokeIssued puts every access token recorded with column = value that a
// verifier may still accept on the revocation list. column is one of the
// constant names below, never input.
func revokeIssued(ctx context.Context, db *sql.DB, now time.Time, column, value string) error {
	cutoff := now.Add(-revokedGrace).Unix()
	if err := purgeRevoked(ctx, db, now); err != nil {
		return err
	}
	// The WHERE clause also keeps SQLite's parser from reading ON CONFLICT
	// as a join constraint of the SELECT.
	_, err := db.ExecContext(ctx, `INSERT INTO as_revoked (jti, exp) SELECT jti, exp FROM as_issued WHERE `+column+` = $1 AND exp >= $2 ON CONFLICT DO NOTHING`,
		value, cutoff)
	return err
}

// The as_issued columns revokeIssued selects on.
const (
	issuedByFamily = "family"
	issuedByUser   = "subject"
	issuedByClient = "client"
)

// stillGranted checks, after a token was recorded, that its user, client
// and refresh family were not disabled or revoked meanwhile. A disable or
// revocation changes its state first and then copies as_issued; so either
// that copy saw this token's row, or this check sees the new state and the
// token is never handed out.
func (s *Server) stillGranted(ctx context.Context, client, user, family string) error {
	refused := oerr(http.StatusBadRequest, "invalid_grant", "grant revoked, or its user or client disabled")
	c, err := s.Client(ctx, client)
	if errors.Is(err, errUnknownClient) || err == nil && c.Disabled {
		return refused
	}
	if err != nil {
		return err
	}
	if user != "" {
		u, err := s.User(ctx, user)
		if errors.Is(err, errUnknownUser) || err == nil && u.Disabled {
			return refused
		}
		if err != nil {
			return err
		}
	}
	if family != "" {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM as_refresh WHERE family = $1 AND revoked <> 0`, family).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return refused
		}
	}
	return nil
}

// purgeRevoked deletes the revocations no verifier needs any more (past exp
// plus revokedGrace); it runs before each addition to the list.
func purgeRevoked(ctx context.Context, db *sql.DB, now time.Time) error {
	_, err := db.ExecContext(ctx, `DELETE FROM as_revoked WHERE exp < $1`, now.Add(-revokedGrace).Unix())
	return err
}
