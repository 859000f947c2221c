// Package breakglass opens time-boxed emergency access (purpose ETREAT or
// BTG) for the roles the policy allows, with a mandatory justification and a
// second factor, and keeps every grant in a persisted review queue that an
// auditor must close.
package breakglass

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"phix/access/policy"
	"phix/access/roles"
	"phix/auth/session"
	"phix/errcode"
)

// Code is a stable reason a break-glass operation was refused.
type Code string

// The codes.
const (
	CodePurpose       Code = "break-glass-purpose"        // purpose is not ETREAT or BTG
	CodeJustification Code = "break-glass-justification"  // justification missing or too short/long
	CodeNotEligible   Code = "break-glass-not-eligible"   // the policy does not let this caller break the glass
	CodeSecondFactor  Code = "break-glass-second-factor"  // TOTP code missing or wrong
	CodeDuration      Code = "break-glass-duration"       // longer than MaxDuration
	CodePatient       Code = "break-glass-patient"        // no patient reference
	CodeNotFound      Code = "break-glass-not-found"      // no such grant
	CodeReviewer      Code = "break-glass-reviewer"       // reviewer is not an auditor, or reviews their own grant
	CodeClosed        Code = "break-glass-already-closed" // the review is done
	CodeOutcome       Code = "break-glass-outcome"        // outcome not appropriate/inappropriate
	CodeLocked        Code = "break-glass-locked"         // too many wrong second-factor codes
)

// Error is a refusal; it names no person or patient.
type Error struct {
	Code    Code
	Reasons []string // policy ids, for CodeNotEligible
}

func (e *Error) Error() string {
	s := "breakglass: " + string(e.Code)
	if len(e.Reasons) > 0 {
		s += " (" + strings.Join(e.Reasons, ", ") + ")"
	}
	return s
}

// CodeOf returns the Code in err's chain, or "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Durations.
const (
	DefaultDuration = 60 * time.Minute
	MaxDuration     = 4 * time.Hour
)

// SecondFactor verifies a TOTP code (auth/totp.Manager).
type SecondFactor interface {
	Verify(ctx context.Context, user, code string) error
}

// Grant is one break-glass grant and its review.
type Grant struct {
	ID            string
	Subject       string   // the principal's non-PHI id
	Roles         []string // the principal's roles when the grant was opened (not stored)
	Patient       string   // "Patient/<id>": the logical id, not a name or MRN
	Purpose       string
	Justification string // free text for the reviewer: kept in the queue only, never logged or audited
	Start, End    time.Time
	Closed        bool
	Reviewer      string
	ReviewedAt    time.Time
	Outcome       string // "appropriate" or "inappropriate"
}

// Service opens, checks and reviews grants.
type Service struct {
	db     *sql.DB
	policy *policy.Engine
	totp   SecondFactor
	// OnGrant is called after a grant is stored: the node raises its
	// security alert there (AuditAlert: AuditEvent DCM 110113/110127). If
	// it fails the grant is removed and Open fails: no emergency access
	// without its alert.
	OnGrant func(context.Context, Grant) error
	// Lockout stops guessing of TOTP codes: five wrong codes lock the
	// principal's break-glass for 15 minutes (default session.NewLockout()).
	Lockout *session.Lockout
	Now     func() time.Time
}

// Migrate creates the review-queue table.
func Migrate(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS break_glass (
		id TEXT PRIMARY KEY, subject TEXT NOT NULL, patient TEXT NOT NULL, purpose TEXT NOT NULL,
		justification TEXT NOT NULL, start_at BIGINT NOT NULL, end_at BIGINT NOT NULL,
		closed INTEGER NOT NULL DEFAULT 0, reviewer TEXT NOT NULL DEFAULT '', reviewed_at BIGINT NOT NULL DEFAULT 0,
		outcome TEXT NOT NULL DEFAULT '')`)
	return err
}

// New returns a Service. totp is required: break-glass needs a second factor.
func New(db *sql.DB, p *policy.Engine, totp SecondFactor) (*Service, error) {
	if db == nil || p == nil || totp == nil {
		return nil, errors.New("breakglass: needs a database, a policy engine and a second factor")
	}
	return &Service{db: db, policy: p, totp: totp, Lockout: session.NewLockout()}, nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Request asks for a grant.
type Request struct {
	Principal     policy.Principal
	Patient       string
	Purpose       string // ETREAT or BTG
	Justification string // 20..2000 characters
	TOTPCode      string
	Duration      time.Duration // 0: DefaultDuration
}

// Open checks and stores a grant.
func (s *Service) Open(ctx context.Context, r Request) (Grant, error) {
	if r.Purpose != "ETREAT" && r.Purpose != "BTG" {
		return Grant{}, &Error{Code: CodePurpose}
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(r.Justification)); n < 20 || n > 2000 {
		return Grant{}, &Error{Code: CodeJustification}
	}
	if !strings.HasPrefix(r.Patient, "Patient/") || len(r.Patient) <= len("Patient/") || len(r.Patient) > 80 {
		return Grant{}, &Error{Code: CodePatient}
	}
	if r.Duration == 0 {
		r.Duration = DefaultDuration
	}
	if r.Duration < 0 || r.Duration > MaxDuration {
		return Grant{}, &Error{Code: CodeDuration}
	}
	d := s.policy.Decide(policy.Input{Principal: r.Principal, Action: policy.ActionBreakGlass,
		Resource: policy.Resource{Type: "Patient"}, Purpose: r.Purpose, Time: s.now()})
	if !d.Allow {
		return Grant{}, &Error{Code: CodeNotEligible, Reasons: d.Reasons}
	}
	lockKey := "break-glass:" + r.Principal.ID
	if err := s.Lockout.Check(ctx, lockKey); err != nil {
		return Grant{}, &Error{Code: CodeLocked}
	}
	if r.TOTPCode == "" || s.totp.Verify(ctx, r.Principal.ID, r.TOTPCode) != nil {
		_, _ = s.Lockout.Failure(ctx, lockKey)
		return Grant{}, &Error{Code: CodeSecondFactor}
	}
	s.Lockout.Success(lockKey)
	var id [16]byte
	_, _ = rand.Read(id[:])
	now := s.now()
	g := Grant{ID: hex.EncodeToString(id[:]), Subject: r.Principal.ID, Roles: roles.Strings(r.Principal.Roles), Patient: r.Patient, Purpose: r.Purpose,
		Justification: strings.TrimSpace(r.Justification), Start: now, End: now.Add(r.Duration)}
	_, err := s.db.ExecContext(ctx, `INSERT INTO break_glass (id, subject, patient, purpose, justification, start_at, end_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		g.ID, g.Subject, g.Patient, g.Purpose, g.Justification, g.Start.UnixMilli(), g.End.UnixMilli())
	if err != nil {
		return Grant{}, err
	}
	if s.OnGrant != nil {
		if err := s.OnGrant(ctx, g); err != nil {
			_, _ = s.db.ExecContext(context.WithoutCancel(ctx), `DELETE FROM break_glass WHERE id = $1`, g.ID)
			return Grant{}, errcode.Wrap(errcode.AuditLogRequired, err, "break-glass alert could not be audited; no grant")
		}
	}
	return g, nil
}

// Active returns the subject's grant covering patient now, if any.
func (s *Service) Active(ctx context.Context, subject, patient string) (Grant, bool, error) {
	now := s.now().UnixMilli()
	gs, err := s.query(ctx, `WHERE subject = $1 AND patient = $2 AND start_at <= $3 AND end_at > $3 ORDER BY end_at DESC LIMIT 1`, subject, patient, now)
	if err != nil || len(gs) == 0 {
		return Grant{}, false, err
	}
	return gs[0], true, nil
}

// Pending is the review queue: every grant not yet closed, oldest first.
func (s *Service) Pending(ctx context.Context) ([]Grant, error) {
	return s.query(ctx, `WHERE closed = 0 ORDER BY start_at`)
}

// Close records an auditor's review. The reviewer must hold the auditor
// role and may not review their own grant.
func (s *Service) Close(ctx context.Context, id string, reviewer policy.Principal, outcome string) error {
	if !slices.Contains(reviewer.Roles, roles.Auditor) || roles.Check(reviewer.Roles) != nil {
		return &Error{Code: CodeReviewer}
	}
	if outcome != "appropriate" && outcome != "inappropriate" {
		return &Error{Code: CodeOutcome}
	}
	gs, err := s.query(ctx, `WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if len(gs) == 0 {
		return &Error{Code: CodeNotFound}
	}
	if gs[0].Subject == reviewer.ID {
		return &Error{Code: CodeReviewer}
	}
	res, err := s.db.ExecContext(ctx, `UPDATE break_glass SET closed = 1, reviewer = $1, reviewed_at = $2, outcome = $3 WHERE id = $4 AND closed = 0`,
		reviewer.ID, s.now().UnixMilli(), outcome, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return &Error{Code: CodeClosed}
	}
	return nil
}

func (s *Service) query(ctx context.Context, where string, args ...any) ([]Grant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, subject, patient, purpose, justification, start_at, end_at, closed, reviewer, reviewed_at, outcome FROM break_glass `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var g Grant
		var start, end, reviewed int64
		if err := rows.Scan(&g.ID, &g.Subject, &g.Patient, &g.Purpose, &g.Justification, &start, &end, &g.Closed, &g.Reviewer, &reviewed, &g.Outcome); err != nil {
			return nil, err
		}
		g.Start, g.End = time.UnixMilli(start), time.UnixMilli(end)
		if reviewed != 0 {
			g.ReviewedAt = time.UnixMilli(reviewed)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
