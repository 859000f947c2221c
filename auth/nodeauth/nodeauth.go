// Package nodeauth wires a hospital node's access control from its parts,
// the same way for the dev network (devnet), `phix node` and `phix fhir
// --auth-server`: the node's own authorization server (auth/authserver)
// mounted under /auth, the bearer authenticator that verifies its tokens
// (and any external IdP's), TOTP, break-glass with its review queue, the
// cedar policy, and the enforcement configuration of the FHIR server. It
// also gives machine clients of the node (the edge gateway) their tokens
// through SMART Backend Services (private_key_jwt),.
package nodeauth

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the auth store on PostgreSQL
	_ "modernc.org/sqlite"             // the auth store on SQLite

	"phix/access/breakglass"
	"phix/access/policy"
	"phix/audit"
	"phix/auth/authserver"
	"phix/auth/oidc"
	"phix/auth/secretbox"
	"phix/auth/session"
	"phix/auth/totp"
	"phix/consent"
	"phix/fhirserver"
	"phix/kms"
	"phix/suite"
)

// Paths under the node's root URL.
const (
	// AuthPath is where the authorization server is mounted: its issuer is
	// ROOT/auth.
	AuthPath = "/auth"
	// BreakGlassPath is the break-glass API (open a grant; the auditor's
	// review queue).
	BreakGlassPath = "/break-glass"
)

// IsPostgres reports whether dsn is a postgres:// URL (else a SQLite path).
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// OpenDB opens the auth store (a SQLite file path or a postgres:// DSN)
// and creates the tables of the authorization server, TOTP, break-glass
// and the per-transfer grants.
func OpenDB(ctx context.Context, dsn string) (*sql.DB, error) {
	var db *sql.DB
	var err error
	if IsPostgres(dsn) {
		db, err = sql.Open("pgx", dsn)
	} else {
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
		db, err = sql.Open("sqlite", "file:"+filepath.Clean(path)+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	}
	if err != nil {
		return nil, err
	}
	for _, m := range []func(context.Context, *sql.DB) error{authserver.Migrate, totp.Migrate, breakglass.Migrate, MigrateGrants, session.MigrateShared} {
		if err := m(ctx, db); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// Sessions returns idle logoff and lockout state kept in the auth store
// (session.SQLState), so that replicas of a node behind one address share
// it: failures add up across them and a lock holds on all.
func Sessions(db *sql.DB) (*session.Idle, *session.Lockout) {
	st := session.NewSQLState(db)
	return &session.Idle{Shared: st}, &session.Lockout{Store: st, Failures: st}
}

// NewBearerAuth returns the node's authenticator: tokens of its own
// authorization server (issuer), for its FHIR base (audience), and of the
// external providers (an empty Audience means the FHIR base), all verified
// through auth/oidc; with db (OpenDB's), idle logoff and lockout are
// shared through it (Sessions).
func NewBearerAuth(issuer, audience string, external []oidc.Provider, db *sql.DB) (*fhirserver.BearerAuth, error) {
	ps := []oidc.Provider{{Issuer: issuer, Audience: []string{audience}, MaxLifetime: authserver.MaxTokenLifetime}}
	for _, p := range external {
		if len(p.Audience) == 0 {
			p.Audience = []string{audience}
		}
		ps = append(ps, p)
	}
	v, err := oidc.New(oidc.Options{}, ps...)
	if err != nil {
		return nil, err
	}
	o := fhirserver.BearerAuthOptions{Verifier: v}
	if db != nil {
		o.Idle, o.Lockout = Sessions(db)
		rt := authserver.NewRevokedTokens(db)
		rt.RefreshEvery = revocationRefresh
		o.Verifier = RevocationChecked(v, issuer, rt)
		al := session.NewStoredAllowlist(db)
		al.RefreshEvery = allowlistRefresh
		o.Allowlist = al.Allowlist()
	}
	return fhirserver.NewBearerAuth(o)
}

// How often a resource server re-reads the revocation list and the IP
// allowlists from the auth store: the longest a revocation or an allowlist
// change takes to reach every replica (tests shorten them).
var (
	revocationRefresh = 2 * time.Second
	allowlistRefresh  = 5 * time.Second
)

// ErrTokenRevoked is the (never shown) reason a revoked access token of the
// node's own authorization server is refused. It is not an oidc.Error, so
// it does not count toward the claimed principal's lockout: an app that
// keeps using a token it revoked is not an attack on the user.
var ErrTokenRevoked = errors.New("nodeauth: access token revoked")

// RevocationChecked wraps a verifier: a token of issuer (the node's own
// authorization server) that verifies is refused when its jti is on the
// revocation list (RFC 7009 /revoke). Tokens of external IdPs are not
// looked up. A list that cannot be read refuses the token (fail closed,
// as the lockout check does when the store is down).
func RevocationChecked(v fhirserver.TokenVerifier, issuer string, revoked *authserver.RevokedTokens) fhirserver.TokenVerifier {
	return revocationVerifier{v: v, issuer: strings.TrimSuffix(issuer, "/"), revoked: revoked}
}

type revocationVerifier struct {
	v       fhirserver.TokenVerifier
	issuer  string
	revoked *authserver.RevokedTokens
}

func (rv revocationVerifier) Verify(ctx context.Context, raw string) (*oidc.Claims, error) {
	c, err := rv.v.Verify(ctx, raw)
	if err != nil || c.Issuer != rv.issuer {
		return c, err
	}
	if c.ID == "" {
		return nil, ErrTokenRevoked // the own server's tokens all have a jti
	}
	revoked, err := rv.revoked.Revoked(ctx, c.ID)
	if err != nil {
		return nil, errors.Join(errors.New("nodeauth: revocation list unavailable"), err)
	}
	if revoked {
		return nil, ErrTokenRevoked
	}
	return c, nil
}

// Config configures Open.
type Config struct {
	DB       *sql.DB      // OpenDB's
	Keys     *kms.Manager // the node's keyring: seals signing keys and TOTP secrets
	Suite    string       // "" means intl
	Hospital string
	// Issuer is ROOT + AuthPath; Audience the FHIR base URL.
	Issuer, Audience string
	// PolicyDir holds the cedar policy; the shipped default
	// (access/policy) is copied into an empty or absent directory.
	PolicyDir string
	// Audit and Pseudonyms record break-glass security alerts (DCM
	// 110113/110127); nil records none.
	Audit      *audit.Log
	Pseudonyms *audit.Pseudonymizer
	Logger     *slog.Logger
}

// Auth is a node's running access control.
type Auth struct {
	AS         *authserver.Server
	TOTP       *totp.Manager
	Policy     *policy.Engine
	BreakGlass *breakglass.Service
	// Grants are the per-transfer treatment grants of machine clients
	// (audited in the node's audit log).
	Grants *Grants

	logger *slog.Logger
}

// Open opens the authorization server (keys sealed under the hospital's
// data KEK), TOTP, the policy and break-glass.
func Open(ctx context.Context, cfg Config) (*Auth, error) {
	if cfg.DB == nil || cfg.Keys == nil || cfg.Hospital == "" || cfg.Issuer == "" || cfg.Audience == "" || cfg.PolicyDir == "" {
		return nil, errors.New("nodeauth: Config needs DB, Keys, Hospital, Issuer, Audience and PolicyDir")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sid := suite.ID(cfg.Suite)
	if sid == "" {
		sid = suite.Intl
	}
	box, err := secretbox.FromKMS(ctx, cfg.Keys, cfg.Hospital, sid)
	if err != nil {
		return nil, err
	}
	// Users with TOTPRequired give a code at login; their secrets are
	// sealed in the same database.
	second := NewTOTP(cfg.DB, box, cfg.Hospital)
	_, lockout := Sessions(cfg.DB)
	as, err := authserver.New(ctx, authserver.Config{Issuer: cfg.Issuer, Audience: cfg.Audience, DB: cfg.DB, Sealer: box, TOTP: second,
		Lockout: lockout, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	if err := policy.WriteDefault(cfg.PolicyDir); err != nil {
		return nil, err
	}
	pe, err := policy.Load(cfg.PolicyDir)
	if err != nil {
		return nil, err
	}
	bg, err := breakglass.New(cfg.DB, pe, second)
	if err != nil {
		return nil, err
	}
	if cfg.Audit != nil {
		bg.OnGrant = breakglass.AuditAlert(cfg.Audit, cfg.Pseudonyms)
	}
	return &Auth{AS: as, TOTP: second, Policy: pe, BreakGlass: bg, Grants: NewGrants(cfg.DB, cfg.Audit, cfg.Pseudonyms),
		logger: cfg.Logger}, nil
}

// NewTOTP is the node's TOTP manager over the auth store (the issuer
// shown in authenticator apps is "phix HOSPITAL").
func NewTOTP(db *sql.DB, box secretbox.Sealer, hospital string) *totp.Manager {
	return totp.New(db, box, "phix "+hospital)
}

// WatchPolicy reloads the policy on SIGHUP or when a file changes, until
// ctx ends.
func (a *Auth) WatchPolicy(ctx context.Context) { a.Policy.Watch(ctx, 0, a.logger) }

// Enforcement is the FHIR server's enforcement configuration: SMART
// scopes, the cedar policy, consents signed with consentKeys, break-glass,
// TOTP for erasure and consent overrides, and grants (explicit treatment
// grants, nil for none: then only CareTeam and Encounter relate a user to
// a patient, and no machine client is related to any).
func (a *Auth) Enforcement(consentKeys consent.KeyResolver, grants func(ctx context.Context, user, patient string) (bool, error)) *fhirserver.Enforcement {
	return &fhirserver.Enforcement{Policy: a.Policy, ConsentKeys: consentKeys, BreakGlass: a.BreakGlass, SecondFactor: a.TOTP,
		Grants: grants}
}

// Mount adds the authorization server (AuthPath), the SMART configuration
// under the FHIR base (basePath, e.g. /fhir/r4) and the break-glass API
// (BreakGlassPath, callers authenticated by bearer) to mux.
func (a *Auth) Mount(mux *http.ServeMux, basePath string, bearer fhirserver.Authenticator) {
	mux.Handle(AuthPath+"/", http.StripPrefix(AuthPath, a.AS.Handler()))
	mux.Handle("GET "+basePath+"/.well-known/smart-configuration", a.AS.SMARTConfiguration())
	mux.Handle(BreakGlassPath+"/", http.StripPrefix(BreakGlassPath, a.BreakGlass.Handler(BreakGlassCaller(bearer))))
}

// BreakGlassCaller names the caller of a break-glass request from its
// bearer token (the same authenticator as the FHIR API).
func BreakGlassCaller(auth fhirserver.Authenticator) breakglass.Authenticator {
	return func(r *http.Request) (policy.Principal, error) {
		p, err := auth.Authenticate(r)
		if err != nil {
			return policy.Principal{}, err
		}
		return policy.Principal{ID: p.Subject, Roles: p.Roles, Org: p.Org}, nil
	}
}

// ConsentKeys vouches for consents signed by the node's own key (own) or
// by one of the trusted peers' signing keys (the registry export).
func ConsentKeys(own consent.KeyResolver, peers ...suite.VerifyKey) consent.KeyResolver {
	if len(peers) == 0 {
		return own
	}
	return keyChain{own, consent.NewTrustedKeys(peers...)}
}

type keyChain []consent.KeyResolver

func (c keyChain) ConsentKey(id string) (suite.VerifyKey, bool) {
	for _, r := range c {
		if k, ok := r.ConsentKey(id); ok {
			return k, true
		}
	}
	return nil, false
}
