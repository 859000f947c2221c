// Package totp enrols and verifies TOTP second factors (RFC 6238, through
// pquerna/otp): enrolment makes a secret and its otpauth:// URI, a first
// code confirms it, and verification refuses a code whose time step was
// already used (no replay). Secrets are stored sealed (auth/secretbox),
// never in plaintext.
package totp

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"phix/auth/secretbox"
)

// Code is a stable reason a TOTP operation failed.
type Code string

// The codes.
const (
	CodeNotEnrolled Code = "totp-not-enrolled"     // no confirmed secret for the user
	CodeInvalid     Code = "totp-invalid"          // wrong code (or wrong shape)
	CodeReplayed    Code = "totp-replayed"         // the code's time step was used already
	CodeNoEnrolment Code = "totp-no-enrolment"     // Confirm without Begin
	CodeAlreadyDone Code = "totp-already-enrolled" // Begin for a user with a confirmed secret
)

// Error is a refusal; it never holds a code or secret.
type Error struct{ Code Code }

func (e *Error) Error() string { return "totp: " + string(e.Code) }

// CodeOf returns the Code in err's chain, or "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

const (
	period = 30
	digits = otp.DigitsSix
	skew   = 1 // one step either side
)

// Manager keeps TOTP secrets in a SQL database (SQLite or PostgreSQL
// placeholders: it uses $1-style, which both accept).
type Manager struct {
	db     *sql.DB
	box    secretbox.Sealer
	issuer string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns a Manager; Migrate must have run on db. issuer names the
// node in authenticator apps (e.g. "phix hospital-a").
func New(db *sql.DB, box secretbox.Sealer, issuer string) *Manager {
	return &Manager{db: db, box: box, issuer: issuer}
}

// Migrate creates the table.
func Migrate(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS totp_secrets (
		username TEXT PRIMARY KEY,
		sealed BYTEA NOT NULL,
		confirmed INTEGER NOT NULL DEFAULT 0,
		last_step BIGINT NOT NULL DEFAULT 0)`)
	return err
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func label(user string) string { return "totp/" + user }

// Enrolment is what a user scans: the secret (base32) and its otpauth URI.
// Show it once; it is not retrievable later.
type Enrolment struct {
	Secret string
	URI    string
}

// Begin starts (or restarts) enrolment of user with a fresh secret. A user
// with a confirmed secret must be reset by an administrator (Reset) first.
func (m *Manager) Begin(ctx context.Context, user string) (Enrolment, error) {
	var confirmed bool
	err := m.db.QueryRowContext(ctx, `SELECT confirmed FROM totp_secrets WHERE username = $1`, user).Scan(&confirmed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Enrolment{}, err
	}
	if confirmed {
		return Enrolment{}, &Error{CodeAlreadyDone}
	}
	k, err := ptotp.Generate(ptotp.GenerateOpts{Issuer: m.issuer, AccountName: user, Period: period, Digits: digits, Algorithm: otp.AlgorithmSHA1, SecretSize: 20})
	if err != nil {
		return Enrolment{}, err
	}
	sealed, err := m.box.Seal(label(user), []byte(k.Secret()))
	if err != nil {
		return Enrolment{}, err
	}
	_, err = m.db.ExecContext(ctx, `INSERT INTO totp_secrets (username, sealed, confirmed, last_step) VALUES ($1, $2, 0, 0)
		ON CONFLICT (username) DO UPDATE SET sealed = excluded.sealed, confirmed = 0, last_step = 0`, user, sealed)
	if err != nil {
		return Enrolment{}, err
	}
	return Enrolment{Secret: k.Secret(), URI: k.URL()}, nil
}

// Confirm completes enrolment with a first valid code.
func (m *Manager) Confirm(ctx context.Context, user, code string) error {
	secret, confirmed, last, err := m.load(ctx, user)
	if err != nil {
		if CodeOf(err) == CodeNotEnrolled {
			return &Error{CodeNoEnrolment}
		}
		return err
	}
	if confirmed {
		return &Error{CodeAlreadyDone}
	}
	step, err := m.check(secret, code, last)
	if err != nil {
		return err
	}
	return m.use(ctx, user, last, step, true)
}

// Verify checks a code of an enrolled user and consumes its time step: the
// same code (or an older one) is refused afterwards.
func (m *Manager) Verify(ctx context.Context, user, code string) error {
	secret, confirmed, last, err := m.load(ctx, user)
	if err != nil {
		return err
	}
	if !confirmed {
		return &Error{CodeNotEnrolled}
	}
	step, err := m.check(secret, code, last)
	if err != nil {
		return err
	}
	return m.use(ctx, user, last, step, false)
}

// Enrolled reports whether user has a confirmed secret.
func (m *Manager) Enrolled(ctx context.Context, user string) (bool, error) {
	_, confirmed, _, err := m.load(ctx, user)
	if CodeOf(err) == CodeNotEnrolled {
		return false, nil
	}
	return confirmed, err
}

// Reset removes a user's secret (an administrator action after a lost device).
func (m *Manager) Reset(ctx context.Context, user string) error {
	_, err := m.db.ExecContext(ctx, `DELETE FROM totp_secrets WHERE username = $1`, user)
	return err
}

func (m *Manager) load(ctx context.Context, user string) (secret string, confirmed bool, last int64, err error) {
	var sealed []byte
	err = m.db.QueryRowContext(ctx, `SELECT sealed, confirmed, last_step FROM totp_secrets WHERE username = $1`, user).Scan(&sealed, &confirmed, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, 0, &Error{CodeNotEnrolled}
	}
	if err != nil {
		return "", false, 0, err
	}
	pt, err := m.box.Open(label(user), sealed)
	if err != nil {
		return "", false, 0, fmt.Errorf("totp: stored secret does not open: %w", err)
	}
	return string(pt), confirmed, last, nil
}

// check finds the time step (within ±skew) whose code equals code, and
// refuses steps at or before last (replay).
func (m *Manager) check(secret, code string, last int64) (int64, error) {
	if len(code) != digits.Length() {
		return 0, &Error{CodeInvalid}
	}
	now := m.now().Unix() / period
	match := int64(-1)
	for s := now - skew; s <= now+skew; s++ {
		want, err := ptotp.GenerateCodeCustom(secret, time.Unix(s*period, 0), ptotp.ValidateOpts{Period: period, Digits: digits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && match < 0 {
			match = s
		}
	}
	if match < 0 {
		return 0, &Error{CodeInvalid}
	}
	if match <= last {
		return 0, &Error{CodeReplayed}
	}
	return match, nil
}

// use records step as used, atomically against a concurrent use of the
// same code (compare-and-set on last_step).
func (m *Manager) use(ctx context.Context, user string, last, step int64, confirm bool) error {
	q := `UPDATE totp_secrets SET last_step = $1 WHERE username = $2 AND last_step = $3`
	if confirm {
		q = `UPDATE totp_secrets SET last_step = $1, confirmed = 1 WHERE username = $2 AND last_step = $3`
	}
	res, err := m.db.ExecContext(ctx, q, step, user, last)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return &Error{CodeReplayed}
	}
	return nil
}
