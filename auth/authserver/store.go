package authserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"phix/access/roles"
)

// Migrate creates the authorization server's tables in db (SQLite or
// PostgreSQL: $n placeholders, portable types).
func Migrate(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS as_keys (kid TEXT PRIMARY KEY, alg TEXT NOT NULL, created BIGINT NOT NULL, retired BIGINT NOT NULL DEFAULT 0, sealed BYTEA NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS as_jti (client TEXT NOT NULL, jti TEXT NOT NULL, exp BIGINT NOT NULL, PRIMARY KEY (client, jti))`,
		`CREATE TABLE IF NOT EXISTS as_clients (id TEXT PRIMARY KEY, doc TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS as_users (name TEXT PRIMARY KEY, doc TEXT NOT NULL)`,
		// Refresh tokens by the SHA-256 of the token (the token itself is
		// never stored); family links the rotations of one grant.
		`CREATE TABLE IF NOT EXISTS as_refresh (id TEXT PRIMARY KEY, family TEXT NOT NULL, client TEXT NOT NULL, subject TEXT NOT NULL,
			scope TEXT NOT NULL, patient TEXT NOT NULL, auth_time BIGINT NOT NULL, expires BIGINT NOT NULL, used BIGINT NOT NULL DEFAULT 0, revoked BIGINT NOT NULL DEFAULT 0)`,
		`CREATE INDEX IF NOT EXISTS as_refresh_family ON as_refresh (family)`,
		`CREATE INDEX IF NOT EXISTS as_refresh_subject ON as_refresh (subject)`,
		// Revoked access tokens (RFC 7009) by jti, kept until the token's
		// exp plus the verifiers' leeway, then purged (revoke.go).
		`CREATE TABLE IF NOT EXISTS as_revoked (jti TEXT PRIMARY KEY, exp BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS as_revoked_exp ON as_revoked (exp)`,
		// Issued access tokens (issued.go): what revoking a refresh family
		// or disabling a user or client puts on as_revoked. subject is the
		// user's name, '' for a client's own token; family '' for none.
		// Purged after exp plus the verifiers' leeway.
		`CREATE TABLE IF NOT EXISTS as_issued (jti TEXT PRIMARY KEY, exp BIGINT NOT NULL, client TEXT NOT NULL, subject TEXT NOT NULL,
			family TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS as_issued_exp ON as_issued (exp)`,
		`CREATE INDEX IF NOT EXISTS as_issued_client ON as_issued (client)`,
		`CREATE INDEX IF NOT EXISTS as_issued_subject ON as_issued (subject)`,
		`CREATE INDEX IF NOT EXISTS as_issued_family ON as_issued (family)`,
		// EHR launch contexts (launch.go) by the SHA-256 of the launch
		// value (the value itself is never stored); single use, short-lived.
		`CREATE TABLE IF NOT EXISTS as_launch (id TEXT PRIMARY KEY, client TEXT NOT NULL, ehr TEXT NOT NULL, doc TEXT NOT NULL,
			expires BIGINT NOT NULL, used BIGINT NOT NULL DEFAULT 0)`,
		`CREATE INDEX IF NOT EXISTS as_launch_expires ON as_launch (expires)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	// Columns added after the table first shipped: SQLite has no ADD COLUMN
	// IF NOT EXISTS, so probe for the column first.
	return addColumn(ctx, db, "as_refresh", "launch", `TEXT NOT NULL DEFAULT ''`)
}

// addColumn adds a column unless it exists. Two processes migrating at
// once may both try: the loser's ALTER fails, and the second probe then
// finds the column.
func addColumn(ctx context.Context, db *sql.DB, table, column, def string) error {
	probe := func() error {
		rows, err := db.QueryContext(ctx, `SELECT `+column+` FROM `+table+` WHERE 1 = 0`)
		if err == nil {
			rows.Close()
		}
		return err
	}
	if probe() == nil {
		return nil
	}
	if _, err := db.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+column+` `+def); err != nil {
		if probe() == nil {
			return nil
		}
		return err
	}
	return nil
}

// Client is a registered client.
type Client struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// JWKS holds the client's public keys for private_key_jwt (SMART Backend
	// Services, or a confidential app). A client without keys is public: it
	// may only use the authorization-code flow with PKCE.
	JWKS *jose.JSONWebKeySet `json:"jwks,omitempty"`
	// RedirectURIs are compared exactly (authorization-code flow).
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// Scope is the most the client may be granted (SMART scope syntax).
	Scope string `json:"scope"`
	// ClientCredentials allows the client_credentials grant (needs JWKS).
	ClientCredentials bool `json:"client_credentials,omitempty"`
	// Roles, Org and Purpose are carried into a machine client's tokens.
	Roles   []string `json:"roles,omitempty"`
	Org     string   `json:"org,omitempty"`
	Purpose string   `json:"purpose_of_use,omitempty"`
	// Introspect lets a confidential client (a resource server) introspect
	// any token of this server (RFC 7662); without it a client may only
	// introspect tokens issued to itself.
	Introspect bool `json:"introspect,omitempty"`
	// EHR lets a confidential client (an EHR) create launch contexts at
	// POST /launch for SMART EHR launch (launch.go).
	EHR bool `json:"ehr,omitempty"`
	// Disabled clients are refused everywhere (phix auth clients disable).
	Disabled bool `json:"disabled,omitempty"`
}

// User is a person who logs in at /authorize.
type User struct {
	Name         string   `json:"name"`
	PasswordHash string   `json:"password_hash"`
	Roles        []string `json:"roles"`
	Org          string   `json:"org,omitempty"`
	Purpose      string   `json:"purpose_of_use,omitempty"`
	// FHIRUser is the user's FHIR resource (Practitioner/123), non-PHI id.
	FHIRUser string `json:"fhir_user,omitempty"`
	// DisplayName is the user's name as shown to apps granted the profile
	// scope (userinfo name); optional.
	DisplayName string `json:"display_name,omitempty"`
	// TOTPRequired makes the login form ask for a TOTP code.
	TOTPRequired bool `json:"totp_required,omitempty"`
	// Patients are the logical ids of the patients this user may pick as
	// the SMART launch context (launch/patient). Empty: any well-formed
	// id the user names (enforcement still decides on every access); a
	// user whose FHIRUser is Patient/X may only pick X.
	Patients []string `json:"patients,omitempty"`
	// Disabled users cannot log in or refresh (phix auth users disable).
	Disabled bool `json:"disabled,omitempty"`
}

// Store is the authorization server's registry of clients and users. The
// Server embeds one; `phix auth` uses one alone (no signing keys needed).
type Store struct {
	db  *sql.DB
	now func() time.Time
}

// NewStore returns the store over db (Migrate must have run).
func NewStore(db *sql.DB) *Store { return &Store{db: db, now: time.Now} }

// RegisterClient adds or replaces a client.
func (st *Store) RegisterClient(ctx context.Context, c Client) error {
	if c.ID == "" || len(c.ID) > 128 {
		return errors.New("authserver: client id must be 1..128 characters")
	}
	if c.ClientCredentials && (c.JWKS == nil || len(c.JWKS.Keys) == 0) {
		return errors.New("authserver: client_credentials needs the client's JWKS")
	}
	if c.Introspect && (c.JWKS == nil || len(c.JWKS.Keys) == 0) {
		return errors.New("authserver: introspection needs a confidential client (with a JWKS)")
	}
	if c.EHR && (c.JWKS == nil || len(c.JWKS.Keys) == 0) {
		return errors.New("authserver: an EHR client needs a confidential client (with a JWKS)")
	}
	if c.JWKS != nil {
		for _, k := range c.JWKS.Keys {
			if !k.IsPublic() || !k.Valid() {
				return errors.New("authserver: client JWKS must hold valid public keys only")
			}
		}
	}
	if _, err := parseScopes(c.Scope); err != nil {
		return fmt.Errorf("authserver: client scope: %w", err)
	}
	if _, err := roles.Parse(c.Roles); err != nil {
		return err
	}
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = st.db.ExecContext(ctx, `INSERT INTO as_clients (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`, c.ID, string(doc))
	return err
}

// Client returns a registered client.
func (st *Store) Client(ctx context.Context, id string) (*Client, error) {
	var doc string
	err := st.db.QueryRowContext(ctx, `SELECT doc FROM as_clients WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errUnknownClient
	}
	if err != nil {
		return nil, err
	}
	var c Client
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return nil, err
	}
	return &c, nil
}

var errUnknownClient = errors.New("authserver: unknown client")
var errUnknownUser = errors.New("authserver: unknown user")

// SetUser adds or replaces a user with a password (stored as argon2id).
// The roles must pass separation of duties.
func (st *Store) SetUser(ctx context.Context, u User, password string) error {
	if u.Name == "" || len(u.Name) > 128 {
		return errors.New("authserver: user name must be 1..128 characters")
	}
	if len(password) < 12 {
		return errors.New("authserver: password must have at least 12 characters")
	}
	if _, err := roles.Parse(u.Roles); err != nil {
		return err
	}
	for _, p := range u.Patients {
		if !validID(p) {
			return errors.New("authserver: user patients must be FHIR logical ids")
		}
	}
	h, err := hashPassword(password)
	if err != nil {
		return err
	}
	u.PasswordHash = h
	doc, err := json.Marshal(u)
	if err != nil {
		return err
	}
	_, err = st.db.ExecContext(ctx, `INSERT INTO as_users (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, u.Name, string(doc))
	return err
}

// User returns a registered user.
func (st *Store) User(ctx context.Context, name string) (*User, error) {
	var doc string
	err := st.db.QueryRowContext(ctx, `SELECT doc FROM as_users WHERE name = $1`, name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errUnknownUser
	}
	if err != nil {
		return nil, err
	}
	var u User
	return &u, json.Unmarshal([]byte(doc), &u)
}

// seenJTI records a client assertion's jti until exp; it reports true when
// the pair was recorded before (a replay). Expired entries are pruned.
func (s *Server) seenJTI(ctx context.Context, client, jti string, exp time.Time) (bool, error) {
	now := s.now()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM as_jti WHERE exp < $1`, now.Unix()); err != nil {
		return false, err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO as_jti (client, jti, exp) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, client, jti, exp.Unix())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 0, err
}

// signingKey is one of the server's token-signing keys.
type signingKey struct {
	kid     string
	alg     jose.SignatureAlgorithm
	priv    crypto.Signer
	created time.Time
	retired time.Time // zero: the current key
}

func keyLabel(kid string) string { return "authserver-signing-key/" + kid }

// loadKeys reads (creating the first on an empty table) the signing keys.
func (s *Server) loadKeys(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT kid, alg, created, retired, sealed FROM as_keys ORDER BY CASE WHEN retired = 0 THEN 0 ELSE 1 END, created DESC`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var keys []*signingKey
	for rows.Next() {
		var kid, alg string
		var created, retired int64
		var sealed []byte
		if err := rows.Scan(&kid, &alg, &created, &retired, &sealed); err != nil {
			return err
		}
		der, err := s.cfg.Sealer.Open(keyLabel(kid), sealed)
		if err != nil {
			return fmt.Errorf("authserver: signing key %s does not open: %w", kid, err)
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return err
		}
		sk := &signingKey{kid: kid, alg: jose.SignatureAlgorithm(alg), priv: k.(crypto.Signer), created: time.Unix(created, 0)}
		if retired != 0 {
			sk.retired = time.Unix(retired, 0)
		}
		keys = append(keys, sk)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(keys) == 0 || !keys[0].retired.IsZero() {
		return s.addKey(ctx)
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
	return nil
}

// addKey makes a new ES256 signing key, retires the current one and reloads.
func (s *Server) addKey(ctx context.Context) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	kid := fmt.Sprintf("as-%x", id)
	sealed, err := s.cfg.Sealer.Seal(keyLabel(kid), der)
	if err != nil {
		return err
	}
	now := s.now().Unix()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE as_keys SET retired = $1 WHERE retired = 0`, now); err != nil {
		return err
	}
	// Keys retired long enough ago that no token they signed is still valid.
	if _, err := tx.ExecContext(ctx, `DELETE FROM as_keys WHERE retired <> 0 AND retired < $1`, now-int64(keyGrace/time.Second)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO as_keys (kid, alg, created, retired, sealed) VALUES ($1, $2, $3, 0, $4)`, kid, string(jose.ES256), now, sealed); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return s.loadKeys(ctx)
}

// keyGrace is how long a retired key stays published: longer than any
// token it signed lives, plus verifier clock leeway.
const keyGrace = 15 * time.Minute

// RotateKeys makes a new signing key current; the previous one stays in
// the JWKS until its tokens have expired.
func (s *Server) RotateKeys(ctx context.Context) error { return s.addKey(ctx) }

func (s *Server) currentKey() *signingKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys[0]
}

// JWKS returns the public keys a verifier needs.
func (s *Server) JWKS() jose.JSONWebKeySet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	var set jose.JSONWebKeySet
	for _, k := range s.keys {
		if !k.retired.IsZero() && now.Sub(k.retired) > keyGrace {
			continue
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	return set
}
