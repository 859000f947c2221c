package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"phix/access/policy"
	"phix/auth/oidc"
	"phix/fhirserver"
	"phix/store"
	"phix/store/postgres"
	"phix/store/reindex"
	"phix/store/sqlite"
)

func init() {
	register(command{name: "fhir", summary: "run one FHIR R4 server (SQLite file or PostgreSQL); 'fhir verify-integrity' checks a store's HMACs", run: runFHIR})
}

func runFHIR(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "verify-integrity" {
		return runVerifyIntegrity(ctx, args[1:])
	}
	fs := flag.NewFlagSet("phix fhir", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address HOST:PORT")
	db := fs.String("db", "", "database: a SQLite file path, or a postgres:// DSN (required)")
	tokenFile := fs.String("token-file", "", "file with the accepted bearer token(s), one per line; created with a fresh token when absent (default DB-dir/fhir.token for SQLite)")
	baseURL := fs.String("base-url", "", "public base URL of the API (default http://HOST:PORT/fhir/r4 from each request)")
	maxBody := fs.Int64("max-body", fhirserver.DefaultMaxBodyBytes, "request body limit in bytes")
	dataDir := fs.String("data-dir", "", "directory of the keyring (dev master key file), audit log and de-identification keys (default: the SQLite file's directory; with PostgreSQL, the token file's directory)")
	hospital := fs.String("hospital", "hospital", "this node's hospital id in the keyring (the audit log origin is HOSPITAL.phix/audit)")
	suiteID := fs.String("suite", "intl", "crypto suite of a new keyring: intl or gm")
	noProtect := fs.Bool("no-protect", false, "store resources in clear, without field encryption, blind indexes and HMAC (benchmark baseline only; never with real data)")
	auditorTokenFile := fs.String("auditor-token-file", "", "file with the auditor's bearer token(s), which read only /audit/ and AuditEvent; created when absent (default TOKEN-FILE with .auditor.token)")
	oidcIssuer := fs.String("oidc-issuer", "", "accept only bearer tokens of this OpenID provider (discovery at ISSUER/.well-known/openid-configuration; roles in the \"roles\" claim) instead of the token files")
	oidcAudience := fs.String("oidc-audience", "", "the aud the provider's tokens must carry (required with --oidc-issuer)")
	policyDir := fs.String("policy", "", "enforce SMART scopes, this cedar policy directory and signed consents on every interaction (needs --oidc-issuer or --auth-server: static tokens carry no scopes or roles; the shipped policy is copied into an empty directory; docs/enforcement.md)")
	authServer := fs.Bool("auth-server", false, "run the node's own authorization server at /auth (SMART App Launch, Backend Services) with enforcement on (--policy, default DATA-DIR/policy), break-glass at /break-glass and TOTP; the token files then receive the current tokens of a local clinician-administrator and auditor client (docs/auth.md)")
	authDB := fs.String("auth-db", "", "the authorization server's store: SQLite file or postgres:// DSN (default DATA-DIR/auth.db; manage it with phix auth --db)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2, err: err}
	}
	if *db == "" {
		return &exitError{code: 2, err: errors.New("--db is required")}
	}
	if *policyDir != "" && *oidcIssuer == "" && !*authServer {
		return &exitError{code: 2, err: errors.New("--policy needs --oidc-issuer or --auth-server: enforcement decides on the token's scopes and roles")}
	}
	if *authServer && *oidcIssuer != "" && *oidcAudience == "" {
		return &exitError{code: 2, err: errors.New("--oidc-audience is required with --oidc-issuer")}
	}
	if *tokenFile == "" {
		if isPostgresURL(*db) {
			return &exitError{code: 2, err: errors.New("--token-file is required with a PostgreSQL database")}
		}
		*tokenFile = *db + ".token"
	}
	if *dataDir == "" {
		if isPostgresURL(*db) {
			*dataDir = filepath.Dir(*tokenFile)
		} else {
			*dataDir = filepath.Dir(strings.TrimPrefix(strings.TrimPrefix(*db, "sqlite:"), "file:"))
		}
	}
	if *auditorTokenFile == "" {
		*auditorTokenFile = strings.TrimSuffix(*tokenFile, ".token") + ".auditor.token"
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	if *authServer {
		return runFHIRWithAuthServer(ctx, fhirAuthOptions{addr: *addr, baseURL: *baseURL, st: st, dataDir: *dataDir, hospital: *hospital, suite: *suiteID,
			maxBody: *maxBody, noProtect: *noProtect, policyDir: *policyDir, authDB: *authDB, tokenFile: *tokenFile, auditorTokenFile: *auditorTokenFile,
			oidcIssuer: *oidcIssuer, oidcAudience: *oidcAudience})
	}
	tokens, created, err := fhirserver.LoadOrCreateTokens(*tokenFile)
	if err != nil {
		return err
	}
	auditorTokens, auditorCreated, err := fhirserver.LoadOrCreateTokens(*auditorTokenFile)
	if err != nil {
		return err
	}
	static, err := fhirserver.NewStaticTokens(tokens...)
	if err != nil {
		return err
	}
	if err := static.AddAuditorTokens(auditorTokens...); err != nil {
		return err
	}
	var auth fhirserver.Authenticator = static
	if *oidcIssuer != "" {
		if auth, err = oidcAuth(*oidcIssuer, *oidcAudience); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	// Custom SearchParameters and background $reindex jobs (docs/reindex.md).
	rx, err := reindex.Open(ctx, st, reindex.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer rx.Close()
	node, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: *dataDir, Hospital: *hospital, Suite: *suiteID, Auth: auth, Logger: logger})
	if err != nil {
		return err
	}
	defer node.Close()
	cfg := fhirserver.Config{Store: st, Auth: auth, BaseURL: *baseURL, Logger: logger, MaxBodyBytes: *maxBody,
		Audit: node.Audit, AuditPseudonyms: node.Pseudonyms, DeidKeys: node.DeidKeys, Protector: node.Protector, Eraser: node.Eraser, Signing: node.Signing, Reindex: rx}
	if *noProtect {
		cfg.Protector, cfg.Eraser = nil, nil
		fmt.Fprintln(os.Stderr, "phix fhir: WARNING: --no-protect stores PHI in clear")
	}
	if *policyDir != "" {
		if err := policy.WriteDefault(*policyDir); err != nil {
			return err
		}
		pe, err := policy.Load(*policyDir)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--policy: %w", err)}
		}
		go pe.Watch(ctx, 0, logger)
		// Consents count when signed with this hospital's own signing key.
		cfg.Enforcement = &fhirserver.Enforcement{Policy: pe, ConsentKeys: node.Signing}
	}
	srv, err := fhirserver.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(os.Stderr, "phix fhir: wrote a new bearer token to %s\n", *tokenFile)
	}
	if auditorCreated {
		fmt.Fprintf(os.Stderr, "phix fhir: wrote a new auditor token to %s\n", *auditorTokenFile)
	}
	fmt.Fprintf(os.Stderr, "phix fhir: audit log %s\n", filepath.Join(*dataDir, "audit.db"))
	fmt.Fprintf(os.Stderr, "phix fhir: serving http://%s%s\n", ln.Addr(), fhirserver.BasePath)
	return fhirserver.Serve(ctx, ln, srv)
}

// oidcAuth accepts the tokens of one OpenID provider (docs/auth.md).
func oidcAuth(issuer, audience string) (fhirserver.Authenticator, error) {
	if audience == "" {
		return nil, errors.New("--oidc-audience is required with --oidc-issuer")
	}
	v, err := oidc.New(oidc.Options{}, oidc.Provider{Issuer: issuer, Audience: []string{audience}})
	if err != nil {
		return nil, err
	}
	return fhirserver.NewBearerAuth(fhirserver.BearerAuthOptions{Verifier: v})
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// openStore opens a SQLite file path (optionally "sqlite:" or "file:"
// prefixed) or a postgres:// DSN.
func openStore(ctx context.Context, dbURL string) (store.Store, error) {
	if isPostgresURL(dbURL) {
		return openPostgres(ctx, dbURL)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(dbURL, "sqlite:"), "file:")
	return sqlite.Open(path)
}

func openPostgres(ctx context.Context, dsn string) (store.Store, error) {
	return postgres.Open(ctx, dsn)
}
