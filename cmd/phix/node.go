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

	"phix/fhirserver"
	"phix/gateway"
	"phix/gateway/coord"
	"phix/pki"
	"phix/store/sqlite"
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
	tokens, _, err := fhirserver.LoadOrCreateTokens(cfg.FHIR.TokenFile)
	if err != nil {
		return err
	}
	auditors, _, err := fhirserver.LoadOrCreateTokens(cfg.FHIR.AuditorTokenFile)
	if err != nil {
		return err
	}
	auth, err := fhirserver.NewStaticTokens(tokens...)
	if err != nil {
		return err
	}
	if err := auth.AddAuditorTokens(auditors...); err != nil {
		return err
	}
	node, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: cfg.Data, Hospital: cfg.Hospital, Suite: cfg.Suite, Auth: auth, Logger: logger})
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
	fln, err := net.Listen("tcp", cfg.FHIR.Listen)
	if err != nil {
		return err
	}
	base := "http://" + fln.Addr().String() + fhirserver.BasePath
	// The node's FHIR server is its PHI vault: protection and signing as
	// in phix fhir (docs/phi-isolation.md).
	srv, err := fhirserver.New(fhirserver.Config{Store: st, Auth: auth, BaseURL: base, Logger: logger,
		Audit: node.Audit, AuditPseudonyms: node.Pseudonyms, DeidKeys: node.DeidKeys,
		Protector: node.Protector, Eraser: node.Eraser, Signing: node.Signing})
	if err != nil {
		fln.Close()
		return err
	}
	gcfg := gateway.Config{Hospital: cfg.Hospital, DataDir: filepath.Join(cfg.Data, "gateway"), DeliveryDir: cfg.Gateway.DeliveryDir,
		Keys: keys, Peers: peers, Coordinator: &coord.Client{Base: cfg.Gateway.Coordinator, HTTP: hc},
		FHIR: &gateway.FHIRClient{Base: base, Token: tokens[0]}, Audit: node.Audit, Logger: logger,
		ChunkSize: cfg.Gateway.ChunkSize, Retention: cfg.Gateway.Retention, DropFolder: cfg.Gateway.DropFolder, Reidentify: cfg.Gateway.Reidentify}
	if cfg.Gateway.Policy != nil {
		gcfg.Policy = *cfg.Gateway.Policy
	}
	g, err := gateway.New(gcfg)
	if err != nil {
		fln.Close()
		return err
	}
	host, _, err := net.SplitHostPort(cfg.Gateway.Listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fln.Close()
		return errors.New("node: gateway.listen must be a loopback address (the API is for local tools)")
	}
	gln, err := net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		fln.Close()
		return err
	}
	gurl := "http://" + gln.Addr().String() + gateway.APIBase
	logger.Info("node listening", "hospital", cfg.Hospital, "fhir", base, "gateway", gurl)
	if ready != nil {
		ready <- [2]string{base, gurl}
	}
	errc := make(chan error, 3)
	go func() { errc <- fhirserver.Serve(ctx, fln, srv) }()
	gs := &http.Server{Handler: g.API(gateway.APIOptions{Tokens: tokens}), ReadHeaderTimeout: 10 * time.Second}
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
