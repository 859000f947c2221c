package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"phix/auth/nodeauth"
	"phix/auth/oidc"
	"phix/fhirserver"
	"phix/gateway"
	"phix/gateway/coord"
	"phix/pki"
	"phix/store/sqlite"
	"phix/suite"
)

func init() {
	register(command{name: "node", summary: "run a hospital node: FHIR server and edge gateway (--config FILE)", run: runNode})
}

const nodeUsage = `usage:
  phix node --config FILE                 run the hospital's FHIR server and edge gateway
  phix node --config FILE --registry-entry print this hospital's registry entry (JSON) for the coordinator`

func runNode(ctx context.Context, args []string) error {
	return nodeMain(ctx, args, os.Stdout, nil)
}

// nodeMain runs a node; ready, if set, receives the FHIR and gateway URLs
// once both listen (tests).
func nodeMain(ctx context.Context, args []string, stdout io.Writer, ready chan<- [2]string) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("config", "", "node configuration (YAML; docs/examples/node.yaml)")
	entry := fs.Bool("registry-entry", false, "print this hospital's registry entry and exit")
	if err := fs.Parse(args); err != nil || *cfgPath == "" {
		return &exitError{code: 2, err: errors.New(nodeUsage)}
	}
	cfg, err := gateway.LoadNodeConfig(*cfgPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	// The listener comes first: the issuer and audience of the node's
	// tokens are URLs on it.
	var fln net.Listener
	listenAddr := cfg.FHIR.Listen
	if !*entry {
		if fln, err = net.Listen("tcp", cfg.FHIR.Listen); err != nil {
			return err
		}
		defer fln.Close()
		listenAddr = fln.Addr().String()
	}
	root := "http://" + listenAddr
	base := root + fhirserver.BasePath
	issuer := root + nodeauth.AuthPath
	var idps []oidc.Provider
	for _, p := range cfg.Auth.IdPs {
		idps = append(idps, oidc.Provider{Issuer: p.Issuer, Audience: p.Audience, JWKSURL: p.JWKSURL})
	}
	// The auth store also holds the sessions' idle and lockout state,
	// shared by replicas.
	if !nodeauth.IsPostgres(cfg.Auth.DB) {
		if err := os.MkdirAll(filepath.Dir(cfg.Auth.DB), 0o700); err != nil {
			return fmt.Errorf("node: auth.db: %w", err)
		}
	}
	authDB, err := nodeauth.OpenDB(ctx, cfg.Auth.DB)
	if err != nil {
		return fmt.Errorf("node: auth.db: %w", err)
	}
	defer authDB.Close()
	bearer, err := nodeauth.NewBearerAuth(issuer, base, idps, authDB)
	if err != nil {
		return err
	}
	node, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: cfg.Data, Hospital: cfg.Hospital, Suite: cfg.Suite, Auth: bearer, Logger: logger})
	if err != nil {
		return err
	}
	defer node.Close()
	keys, err := gateway.KeysFromKMS(ctx, node.Keys, cfg.Hospital, node.DeidKeys)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(cfg.Gateway.CertFile, cfg.Gateway.KeyFile)
	if err != nil {
		return fmt.Errorf("node: load the gateway's TLS certificate: %w", err)
	}
	if *entry {
		signer, ok := cert.PrivateKey.(crypto.Signer)
		if !ok {
			return errors.New("node: the gateway's TLS key is not a signing key")
		}
		pin, err := pki.PublicKeyPin(signer.Public())
		if err != nil {
			return err
		}
		e := keys.RegistryEntry(cfg.Hospital, cfg.Region, []string{"127.0.0.0/8"}, []string{pin}, nil)
		b, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	peersJSON, err := os.ReadFile(cfg.Gateway.PeersFile)
	if err != nil {
		return fmt.Errorf("node: read gateway.peers_file: %w", err)
	}
	peers, err := gateway.ParsePeers(peersJSON)
	if err != nil {
		return err
	}
	hc, err := coordinatorClient(cfg, &cert)
	if err != nil {
		return err
	}
	st, err := sqlite.Open(filepath.Join(cfg.Data, "fhir.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	// Access control as in the dev network (auth/nodeauth): the node's own
	// authorization server, the policy, TOTP and break-glass.
	na, err := nodeauth.Open(ctx, nodeauth.Config{DB: authDB, Keys: node.Keys, Suite: cfg.Suite, Hospital: cfg.Hospital, Issuer: issuer, Audience: base,
		PolicyDir: cfg.Auth.Policy, Audit: node.Audit, Pseudonyms: node.Pseudonyms, Logger: logger})
	if err != nil {
		return err
	}
	go na.WatchPolicy(ctx)
	// The gateway is a backend-services client of its own node.
	gw, err := na.RegisterServiceClient(ctx, cfg.Hospital, nodeauth.ServiceClientSpec{ID: cfg.Hospital + "-gateway", Scope: "system/*.cruds",
		Roles: []string{"clinician"}, Purpose: "TREAT"})
	if err != nil {
		return err
	}
	// Reading a transfer's consent (to verify it) uses a client limited to
	// system/Consent.rs, so the gateway's clinical access can be reduced to
	// per-transfer grants (nodeauth.Grants, FHIRClient.OpenGrant).
	gwConsents, err := na.RegisterServiceClient(ctx, cfg.Hospital, nodeauth.ServiceClientSpec{ID: cfg.Hospital + "-gateway-consents",
		Scope: "system/Consent.rs", Roles: []string{"clinician"}, Purpose: "TREAT"})
	if err != nil {
		return err
	}
	// Standing grants: the consent reader only (Consent resources, by its
	// scope). The gateway collects and imports under per-transfer grants
	// (gateway.FHIRClient.OpenGrant), and the local administrator client
	// below has one for operators' use.
	grantees := []string{gwConsents.ID}
	var files []nodeauth.TokenFile
	if *cfg.Auth.LocalClients {
		for _, c := range []struct {
			spec nodeauth.ServiceClientSpec
			path string
		}{
			{nodeauth.ServiceClientSpec{ID: cfg.Hospital + "-admin", Scope: "system/*.cruds", Roles: []string{"clinician"}, Purpose: "TREAT"}, cfg.FHIR.TokenFile},
			{nodeauth.ServiceClientSpec{ID: cfg.Hospital + "-auditor", Scope: "system/AuditEvent.rs", Roles: []string{"auditor"}, Purpose: "HOPERAT"}, cfg.FHIR.AuditorTokenFile},
		} {
			svc, err := na.RegisterServiceClient(ctx, cfg.Hospital, c.spec)
			if err != nil {
				return err
			}
			files = append(files, nodeauth.TokenFile{Client: svc, Path: c.path})
		}
		grantees = append(grantees, files[0].Client.ID)
	}
	// Consents count when signed by this hospital or, with
	// auth.peer_consents, by a trusted peer of the registry export.
	var peerKeys []suite.VerifyKey
	if *cfg.Auth.PeerConsents {
		for _, p := range peers {
			peerKeys = append(peerKeys, p.Verify)
		}
	}
	// The node's FHIR server is its PHI vault: protection and signing as
	// in phix fhir (docs/phi-isolation.md), and every interaction decided
	// by scopes, policy and consent (docs/enforcement.md).
	enf := na.Enforcement(nodeauth.ConsentKeys(node.Signing, peerKeys...), nodeauth.Or(na.Grants.Check, nodeauth.ClientGrants(grantees...)))
	enf.OrganisationTags = cfg.Auth.OrganisationTags
	srv, err := fhirserver.New(fhirserver.Config{Store: st, Auth: bearer, BaseURL: base, Logger: logger,
		Audit: node.Audit, AuditPseudonyms: node.Pseudonyms, DeidKeys: node.DeidKeys,
		Protector: node.Protector, Eraser: node.Eraser, Signing: node.Signing,
		Enforcement: enf})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	na.Mount(mux, fhirserver.BasePath, bearer)
	mux.Handle("/", srv)
	gcfg := gateway.Config{Hospital: cfg.Hospital, DataDir: filepath.Join(cfg.Data, "gateway"), DeliveryDir: cfg.Gateway.DeliveryDir,
		Keys: keys, Peers: peers, Coordinator: &coord.Client{Base: cfg.Gateway.Coordinator, HTTP: hc,
			Bulk: &http.Client{Transport: coord.HTTP1Transport(hc.Transport.(*http.Transport))}},
		FHIR: &gateway.FHIRClient{Base: base, TokenSource: gw.Token, ConsentTokenSource: gwConsents.Token, Grants: na.Grants.For(gw.ID)}, Audit: node.Audit, Logger: logger,
		ChunkSize: cfg.Gateway.ChunkSize, Retention: cfg.Gateway.Retention, DropFolder: cfg.Gateway.DropFolder, Reidentify: cfg.Gateway.Reidentify}
	if cfg.Gateway.Policy != nil {
		gcfg.Policy = *cfg.Gateway.Policy
	}
	g, err := gateway.New(gcfg)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(cfg.Gateway.Listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return errors.New("node: gateway.listen must be a loopback address (the API is for local tools)")
	}
	gln, err := net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		return err
	}
	gurl := "http://" + gln.Addr().String() + gateway.APIBase
	errc := make(chan error, 3)
	go func() { errc <- fhirserver.Serve(ctx, fln, mux) }()
	// Local tools' tokens come through the token endpoint, so the server
	// must be up first.
	if len(files) > 0 {
		if _, err := nodeauth.RefreshTokenFiles(ctx, files); err != nil {
			return err
		}
		go nodeauth.KeepTokenFilesFresh(ctx, files, func(err error) { logger.Error("token file refresh failed", "err", err) }, nil)
	}
	logger.Info("node listening", "hospital", cfg.Hospital, "fhir", base, "auth", issuer, "gateway", gurl)
	if ready != nil {
		ready <- [2]string{base, gurl}
	}
	gs := &http.Server{Handler: g.API(gateway.APIOptions{Authorize: nodeauth.ClinicianOnly(bearer)}), ReadHeaderTimeout: 10 * time.Second}
	go func() { errc <- gs.Serve(gln) }()
	go func() { errc <- g.Run(ctx, *cfg.Gateway.Receive) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = gs.Shutdown(sctx)
	g.Stop()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// coordinatorClient is the gateway's mutual-TLS client: its certificate,
// the network CA and the coordinator's pinned key.
func coordinatorClient(cfg *gateway.NodeConfig, cert *tls.Certificate) (*http.Client, error) {
	ca, err := pki.ReadCertificateFile(cfg.Gateway.CAFile)
	if err != nil {
		return nil, err
	}
	pins := pki.NewMemoryPins()
	if err := pins.Add(pki.Coordinator(cfg.Gateway.CoordinatorID), cfg.Gateway.CoordinatorPin); err != nil {
		return nil, fmt.Errorf("node: gateway.coordinator_pin: %w", err)
	}
	v, err := pki.NewVerifier(pki.VerifierConfig{CA: ca, Pins: pins, CRL: pki.CRLFile(cfg.Gateway.CRLFile)})
	if err != nil {
		return nil, err
	}
	tcfg, err := pki.ClientTLSConfig(pki.ClientConfig{Verifier: v, Server: pki.Coordinator(cfg.Gateway.CoordinatorID),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }})
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg, ForceAttemptHTTP2: true, ResponseHeaderTimeout: 90 * time.Second}}, nil
}
