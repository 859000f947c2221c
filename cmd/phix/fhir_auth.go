package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"phix/auth/nodeauth"
	"phix/auth/oidc"
	"phix/fhirserver"
	"phix/store"
	"phix/store/reindex"
)

// fhirAuthOptions are the flags of `phix fhir --auth-server`.
type fhirAuthOptions struct {
	addr, baseURL               string
	st                          store.Store
	dataDir, hospital, suite    string
	maxBody                     int64
	noProtect                   bool
	policyDir, authDB           string
	tokenFile, auditorTokenFile string
	oidcIssuer, oidcAudience    string
}

// runFHIRWithAuthServer runs one FHIR server with the node's access
// control (auth/nodeauth, as phix node and the dev network): its own
// authorization server at /auth, enforcement, break-glass and TOTP.
func runFHIRWithAuthServer(ctx context.Context, o fhirAuthOptions) error {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	// The listener comes first: issuer and audience are URLs on it.
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	base := strings.TrimSuffix(o.baseURL, "/")
	if base == "" {
		base = "http://" + ln.Addr().String() + fhirserver.BasePath
	}
	root, ok := strings.CutSuffix(base, fhirserver.BasePath)
	if !ok {
		return &exitError{code: 2, err: fmt.Errorf("--base-url must end in %s with --auth-server", fhirserver.BasePath)}
	}
	issuer := root + nodeauth.AuthPath
	var idps []oidc.Provider
	if o.oidcIssuer != "" {
		idps = append(idps, oidc.Provider{Issuer: o.oidcIssuer, Audience: []string{o.oidcAudience}})
	}
	if o.authDB == "" {
		o.authDB = filepath.Join(o.dataDir, "auth.db")
	}
	if o.policyDir == "" {
		o.policyDir = filepath.Join(o.dataDir, "policy")
	}
	if !nodeauth.IsPostgres(o.authDB) {
		if err := os.MkdirAll(filepath.Dir(o.authDB), 0o700); err != nil {
			return fmt.Errorf("--auth-db: %w", err)
		}
	}
	db, err := nodeauth.OpenDB(ctx, o.authDB)
	if err != nil {
		return fmt.Errorf("--auth-db: %w", err)
	}
	defer db.Close()
	bearer, err := nodeauth.NewBearerAuth(issuer, base, idps, db)
	if err != nil {
		return err
	}
	rx, err := reindex.Open(ctx, o.st, reindex.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer rx.Close()
	node, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: o.dataDir, Hospital: o.hospital, Suite: o.suite, Auth: bearer, Logger: logger})
	if err != nil {
		return err
	}
	defer node.Close()
	na, err := nodeauth.Open(ctx, nodeauth.Config{DB: db, Keys: node.Keys, Suite: o.suite, Hospital: o.hospital, Issuer: issuer, Audience: base,
		PolicyDir: o.policyDir, Audit: node.Audit, Pseudonyms: node.Pseudonyms, Logger: logger})
	if err != nil {
		return err
	}
	go na.WatchPolicy(ctx)
	var files []nodeauth.TokenFile
	for _, c := range []struct {
		spec nodeauth.ServiceClientSpec
		path string
	}{
		{nodeauth.ServiceClientSpec{ID: o.hospital + "-admin", Scope: "system/*.cruds", Roles: []string{"clinician"}, Purpose: "TREAT"}, o.tokenFile},
		{nodeauth.ServiceClientSpec{ID: o.hospital + "-auditor", Scope: "system/AuditEvent.rs", Roles: []string{"auditor"}, Purpose: "HOPERAT"}, o.auditorTokenFile},
	} {
		svc, err := na.RegisterServiceClient(ctx, o.hospital, c.spec)
		if err != nil {
			return err
		}
		files = append(files, nodeauth.TokenFile{Client: svc, Path: c.path})
	}
	cfg := fhirserver.Config{Store: o.st, Auth: bearer, BaseURL: base, Logger: logger, MaxBodyBytes: o.maxBody,
		Audit: node.Audit, AuditPseudonyms: node.Pseudonyms, DeidKeys: node.DeidKeys, Protector: node.Protector, Eraser: node.Eraser,
		Signing: node.Signing, Reindex: rx,
		// Consents count when signed with this hospital's key; the local
		// clinician-administrator client holds the one standing grant.
		Enforcement: na.Enforcement(node.Signing, nodeauth.ClientGrants(files[0].Client.ID))}
	if o.noProtect {
		cfg.Protector, cfg.Eraser = nil, nil
		fmt.Fprintln(os.Stderr, "phix fhir: WARNING: --no-protect stores PHI in clear")
	}
	srv, err := fhirserver.New(cfg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	na.Mount(mux, fhirserver.BasePath, bearer)
	mux.Handle("/", srv)
	errc := make(chan error, 1)
	go func() { errc <- fhirserver.Serve(ctx, ln, mux) }()
	if _, err := nodeauth.RefreshTokenFiles(ctx, files); err != nil {
		return err
	}
	go nodeauth.KeepTokenFilesFresh(ctx, files, func(err error) { logger.Error("token file refresh failed", "err", err) }, nil)
	fmt.Fprintf(os.Stderr, "phix fhir: authorization server %s (users and clients: phix auth --db %s)\n", issuer, o.authDB)
	fmt.Fprintf(os.Stderr, "phix fhir: current tokens in %s and %s (rewritten every 4 minutes)\n", o.tokenFile, o.auditorTokenFile)
	fmt.Fprintf(os.Stderr, "phix fhir: audit log %s\n", filepath.Join(o.dataDir, "audit.db"))
	fmt.Fprintf(os.Stderr, "phix fhir: serving %s\n", base)
	return <-errc
}
