package nodeauth

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"phix/audit"
)

// Per-transfer treatment grants. A machine client (the edge gateway) has
// no CareTeam or Encounter: the only thing that relates it to a patient is
// an explicit grant. Instead of a standing grant to every patient, a
// TransferGrant lets the client act for one patient, for one transfer, on
// the basis of one verified consent, for a short time; opening and closing
// it are audited (ActionTransfer, policy "nodeauth:transfer-grant").

// DefaultGrantTTL and MaxGrantTTL bound a transfer grant's lifetime.
const (
	DefaultGrantTTL = 15 * time.Minute
	MaxGrantTTL     = time.Hour
)

// TransferGrant is one time-boxed grant.
type TransferGrant struct {
	Client   string // the client id (without "Client/")
	Patient  string // the patient's logical id
	Transfer string // the transfer id (outbound job or inbound transfer)
	Consent  string // the logical id of the verified consent relied upon
	Purpose  string // purpose of use (TREAT, ETREAT, ...)
	// Direction is "outbound" (collect) or "inbound" (import).
	Direction string
	TTL       time.Duration // default DefaultGrantTTL, at most MaxGrantTTL
}

// Grants stores transfer grants in the auth store and answers the
// enforcement layer's question "may this client treat this patient now".
type Grants struct {
	db  *sql.DB
	log *audit.Log
	ps  *audit.Pseudonymizer
	now func() time.Time
}

// MigrateGrants creates the grants table (OpenDB runs it).
func MigrateGrants(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS node_grants (client TEXT NOT NULL, patient TEXT NOT NULL, transfer TEXT NOT NULL, consent TEXT NOT NULL,
			purpose TEXT NOT NULL, direction TEXT NOT NULL, created BIGINT NOT NULL, expires BIGINT NOT NULL, PRIMARY KEY (client, transfer, patient))`,
		`CREATE INDEX IF NOT EXISTS node_grants_lookup ON node_grants (client, patient, expires)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// NewGrants returns the grant store over db (MigrateGrants must have run);
// log and ps, if set, audit every grant opened and closed.
func NewGrants(db *sql.DB, log *audit.Log, ps *audit.Pseudonymizer) *Grants {
	return &Grants{db: db, log: log, ps: ps, now: time.Now}
}

// Errors of Open (no PHI: they never quote the ids).
var (
	ErrGrantIncomplete = errors.New("nodeauth: a transfer grant needs client, patient, transfer, consent, purpose and direction")
	ErrGrantMalformed  = errors.New("nodeauth: a transfer grant's ids must be plain identifiers")
)

// Open records g (replacing an earlier grant of the same client, transfer
// and patient) and audits it. The caller has verified the consent.
func (gs *Grants) Open(ctx context.Context, g TransferGrant) (expires time.Time, err error) {
	if g.Client == "" || g.Patient == "" || g.Transfer == "" || g.Consent == "" || g.Purpose == "" || (g.Direction != "outbound" && g.Direction != "inbound") {
		return time.Time{}, ErrGrantIncomplete
	}
	for _, s := range []string{g.Client, g.Patient, g.Transfer, g.Consent, g.Purpose} {
		if len(s) > 128 || strings.ContainsAny(s, "/\x00 \t\r\n") {
			return time.Time{}, ErrGrantMalformed
		}
	}
	if g.TTL <= 0 {
		g.TTL = DefaultGrantTTL
	}
	g.TTL = min(g.TTL, MaxGrantTTL)
	now := gs.now()
	expires = now.Add(g.TTL)
	if _, err := gs.db.ExecContext(ctx, `DELETE FROM node_grants WHERE expires < $1`, now.Unix()); err != nil {
		return time.Time{}, err
	}
	if _, err := gs.db.ExecContext(ctx, `INSERT INTO node_grants (client, patient, transfer, consent, purpose, direction, created, expires)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (client, transfer, patient) DO UPDATE SET consent = excluded.consent, purpose = excluded.purpose,
			direction = excluded.direction, created = excluded.created, expires = excluded.expires`,
		g.Client, g.Patient, g.Transfer, g.Consent, g.Purpose, g.Direction, now.Unix(), expires.Unix()); err != nil {
		return time.Time{}, err
	}
	return expires, gs.audit(ctx, g, "open")
}

// Close ends every grant of a transfer (when its collect or import is
// done, or it failed) and audits it.
func (gs *Grants) Close(ctx context.Context, client, transfer string) error {
	rows, err := gs.db.QueryContext(ctx, `SELECT patient, consent, purpose, direction FROM node_grants WHERE client = $1 AND transfer = $2`, client, transfer)
	if err != nil {
		return err
	}
	var closed []TransferGrant
	for rows.Next() {
		g := TransferGrant{Client: client, Transfer: transfer}
		if err := rows.Scan(&g.Patient, &g.Consent, &g.Purpose, &g.Direction); err != nil {
			rows.Close()
			return err
		}
		closed = append(closed, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := gs.db.ExecContext(ctx, `DELETE FROM node_grants WHERE client = $1 AND transfer = $2`, client, transfer); err != nil {
		return err
	}
	for _, g := range closed {
		if err := gs.audit(ctx, g, "close"); err != nil {
			return err
		}
	}
	return nil
}

// Check is fhirserver.Enforcement.Grants: user is "Client/<id>" for a
// machine client; true while an unexpired grant of that client names the
// patient. Persons are never granted here.
func (gs *Grants) Check(ctx context.Context, user, patient string) (bool, error) {
	client, ok := strings.CutPrefix(user, "Client/")
	if !ok || client == "" || patient == "" {
		return false, nil
	}
	var n int
	err := gs.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM node_grants WHERE client = $1 AND patient = $2 AND expires > $3`,
		client, patient, gs.now().Unix()).Scan(&n)
	return n > 0, err
}

// Or answers true when any of the grant functions does (a transition
// period: transfer grants next to a standing grant).
func Or(fs ...func(ctx context.Context, user, patient string) (bool, error)) func(ctx context.Context, user, patient string) (bool, error) {
	return func(ctx context.Context, user, patient string) (bool, error) {
		for _, f := range fs {
			if ok, err := f(ctx, user, patient); err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	}
}

// audit records a grant event: pseudonymous patient and client, the
// transfer id as request id, the consent and purpose relied upon.
func (gs *Grants) audit(ctx context.Context, g TransferGrant, what string) error {
	if gs.log == nil {
		return nil
	}
	ev := audit.Event{Action: audit.ActionTransfer, Outcome: audit.OutcomeSuccess, RequestID: g.Transfer,
		Who:      audit.Who{Role: "edge-gateway"},
		What:     audit.What{ResourceType: "Patient"},
		Why:      &audit.Why{ConsentID: g.Consent, Purpose: g.Purpose},
		Decision: &audit.Decision{Effect: "permit", Policies: []string{"nodeauth:transfer-grant:" + what, "nodeauth:" + g.Direction}}}
	if gs.ps != nil {
		ev.Who.User = gs.ps.User("Client/" + g.Client)
		ev.What.Patient = gs.ps.Patient(g.Patient)
	}
	_, err := gs.log.Append(ctx, ev)
	return err
}

// ClientTransferGrants opens and closes one client's transfer grants; it
// satisfies gateway.TransferGrants (the gateway's FHIRClient.Grants).
type ClientTransferGrants struct {
	g      *Grants
	client string
}

// For returns the grant opener of one client (the gateway's).
func (gs *Grants) For(client string) *ClientTransferGrants {
	return &ClientTransferGrants{g: gs, client: client}
}

// OpenTransferGrant grants the client treatment of patient for one
// transfer on the basis of a consent the caller verified.
func (c *ClientTransferGrants) OpenTransferGrant(ctx context.Context, patient, transfer, consent, purpose, direction string) error {
	_, err := c.g.Open(ctx, TransferGrant{Client: c.client, Patient: patient, Transfer: transfer, Consent: consent, Purpose: purpose, Direction: direction})
	return err
}

// CloseTransferGrant ends the client's grants of a transfer.
func (c *ClientTransferGrants) CloseTransferGrant(ctx context.Context, transfer string) error {
	return c.g.Close(ctx, c.client, transfer)
}
