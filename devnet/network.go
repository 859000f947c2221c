package devnet

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/blob"
	"phix/blob/fsblob"
	"phix/fhirserver"
	"phix/gateway"
	"phix/gateway/coord"
	"phix/pki"
	"phix/queue/natsq"
	"phix/suite"
	"phix/transfer"
	"phix/transfer/transfersql"
)

// CoordinatorOptions choose the coordinator's engines. The zero value is
// the embedded mode: SQLite, the file system and an in-process NATS, all
// under DIR/coordinator.
type CoordinatorOptions struct {
	// StoreURL is a postgres:// URL (scale-out) or a SQLite path.
	StoreURL string
	// NewBlobs, if set, opens the blob store (e.g. s3blob) for each replica,
	// so replicas share the bucket but no client.
	NewBlobs func() (blob.Store, error)
	// NATS replaces the embedded queue (an external JetStream).
	NATS *natsq.Config
	// Replicas is the number of coordinator replicas (default 1). With two,
	// hospital-a's gateway talks to the first and hospital-b's to the
	// second: they share nothing but the engines above.
	Replicas int
}

// coordinatorRegion is where the dev coordinator's ciphertext lives.
const coordinatorRegion = "CN-SH"

var hospitalRegions = map[string]string{"hospital-a": "CN-SH", "hospital-b": "CN-SH"}

// pkiSetup opens (or creates) the dev network CA in DIR/pki and a
// certificate for each principal whose key is kept across restarts (so
// the registry's pins stay valid); certificates are re-issued at each
// start (they are short-lived).
type pkiSetup struct {
	dir string
	ca  *pki.CA
}

func openPKI(dir string) (*pkiSetup, error) {
	var ca *pki.CA
	var err error
	if _, statErr := os.Stat(filepath.Join(dir, pki.CACertFile)); statErr == nil {
		ca, err = pki.OpenDir(dir, nil, pki.Options{})
	} else {
		ca, err = pki.InitDir(dir, pki.CAConfig{Name: "phix dev network"}, nil, pki.Options{})
	}
	if err != nil {
		return nil, err
	}
	return &pkiSetup{dir: dir, ca: ca}, nil
}

// issue returns a certificate for p with its kept key.
func (s *pkiSetup) issue(ctx context.Context, p pki.Principal, name string) (*tls.Certificate, string, error) {
	keyPath := filepath.Join(s.dir, name+".key")
	var key crypto.Signer
	if _, err := os.Stat(keyPath); err == nil {
		if key, err = pki.ReadKeyFile(keyPath, nil); err != nil {
			return nil, "", err
		}
		is, err := s.ca.Issue(ctx, pki.IssueRequest{Principal: p, PublicKey: key.Public(), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Lifetime: pki.DefaultMaxLifetime})
		if err != nil {
			return nil, "", err
		}
		return is.TLSCertificate(key), is.Pin, pki.WriteFileAtomic(filepath.Join(s.dir, name+".crt"), is.CertPEM, 0o644)
	}
	is, key, err := s.ca.IssueWithNewKey(ctx, pki.IssueRequest{Principal: p, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Lifetime: pki.DefaultMaxLifetime})
	if err != nil {
		return nil, "", err
	}
	kb, err := pki.MarshalPrivateKey(key, nil)
	if err != nil {
		return nil, "", err
	}
	if err := pki.WriteFileAtomic(keyPath, kb, 0o600); err != nil {
		return nil, "", err
	}
	return is.TLSCertificate(key), is.Pin, pki.WriteFileAtomic(filepath.Join(s.dir, name+".crt"), is.CertPEM, 0o644)
}

// coordinator is the running coordinator (one or more replicas).
type coordinator struct {
	urls  []string
	pin   string
	store transfer.Store
}

func (n *Network) startCoordinator(ctx context.Context, opts Options, p *pkiSetup, logger *slog.Logger) (*coordinator, error) {
	dir := filepath.Join(opts.DataDir, "coordinator")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	co := opts.Coordinator
	if co.Replicas <= 0 {
		co.Replicas = 1
	}
	storeURL := co.StoreURL
	if storeURL == "" {
		storeURL = filepath.Join(dir, "coordinator.db")
	}
	newBlobs := co.NewBlobs
	if newBlobs == nil {
		newBlobs = func() (blob.Store, error) { return fsblob.New(filepath.Join(dir, "blobs"), coordinatorRegion) }
	}
	cert, pin, err := p.issue(ctx, pki.Coordinator("dev"), "coordinator")
	if err != nil {
		return nil, err
	}
	signer, err := loadOrCreateKey(filepath.Join(dir, "audit.key"))
	if err != nil {
		return nil, err
	}
	ab, err := auditsqlite.Open(ctx, filepath.Join(dir, "audit.db"))
	if err != nil {
		return nil, err
	}
	n.close = append(n.close, ab.Close)
	alog, err := audit.Open(ctx, ab, audit.Options{Origin: "coordinator.phix/audit", Signer: signer, Logger: logger})
	if err != nil {
		return nil, err
	}
	n.close = append(n.close, alog.Close)
	c := &coordinator{pin: pin}
	for i := 0; i < co.Replicas; i++ {
		st, err := transfersql.Open(ctx, storeURL)
		if err != nil {
			return nil, err
		}
		n.close = append(n.close, st.Close)
		if c.store == nil {
			c.store = st
		}
		qcfg := natsq.Config{StoreDir: filepath.Join(dir, "nats")}
		if co.NATS != nil {
			qcfg = *co.NATS
		} else if i > 0 {
			return nil, errors.New("devnet: several coordinator replicas need an external NATS")
		}
		q, err := natsq.Open(ctx, qcfg)
		if err != nil {
			return nil, err
		}
		n.close = append(n.close, q.Close)
		blobs, err := newBlobs()
		if err != nil {
			return nil, err
		}
		srv, err := transfer.NewServer(transfer.Config{Store: st, Blobs: blobs, Queue: q, Auditor: alog, Logger: logger,
			ID: fmt.Sprintf("coordinator-%d", i+1), Policy: transfer.PolicyConfig{AllowedRegions: []string{"CN-*"}}})
		if err != nil {
			return nil, err
		}
		v, err := pki.NewVerifier(pki.VerifierConfig{CA: p.ca.Certificate(), Pins: transfer.PinStore{Store: st}, CRL: p.ca.CRLSource()})
		if err != nil {
			return nil, err
		}
		tcfg, err := pki.ServerTLSConfig(pki.ServerConfig{Verifier: v, ClaimedPeer: transfer.ClaimedPeerFromSNI,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }})
		if err != nil {
			return nil, err
		}
		port := 0
		if opts.BasePort > 0 && i == 0 {
			port = opts.BasePort - 1 // 18080 by default
		}
		ln, err := listen(port, 0)
		if err != nil {
			return nil, err
		}
		hs := &http.Server{Handler: srv, TLSConfig: tcfg, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
		n.serve(ctx, func() error { return hs.ServeTLS(ln, "", "") }, hs)
		go srv.RunSweeper(ctx, 5*time.Minute)
		c.urls = append(c.urls, "https://"+ln.Addr().String())
	}
	return c, nil
}

func loadOrCreateKey(path string) (suite.SigningKey, error) {
	s, _ := suite.Lookup(suite.Intl)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := s.GenerateSigningKey()
		if err != nil {
			return nil, err
		}
		return k, pki.WriteFileAtomic(path, k.Bytes(), 0o600)
	}
	if err != nil {
		return nil, err
	}
	return s.ParseSigningKey(b)
}

// serve runs an http.Server until ctx ends.
func (n *Network) serve(ctx context.Context, run func() error, hs *http.Server) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		errc := make(chan error, 1)
		go func() { errc <- run() }()
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.mu.Lock()
				if n.err == nil {
					n.err = err
				}
				n.mu.Unlock()
			}
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = hs.Shutdown(sctx)
			cancel()
			<-errc
		}
	}()
}

// partners is what each dev hospital may send the other.
func partners(id string) map[string]transfer.Partner {
	out := map[string]transfer.Partner{}
	for _, other := range HospitalIDs {
		if other != id {
			out[other] = transfer.Partner{DataClasses: []string{"clinical", "imaging", "laboratory", "research-deidentified"},
				Purposes: []string{"TREAT", "ETREAT", "HRESCH", "PUBHLTH", "COC"}}
		}
	}
	return out
}

// coordClient is a hospital's mutual-TLS client for the coordinator: its
// certificate, and the coordinator's pinned certificate; the second client
// is the same over HTTP/1.1 only, for file bodies (coord.Client.Bulk).
func coordClient(p *pkiSetup, cert *tls.Certificate, coordPin string, wrap func(http.RoundTripper) http.RoundTripper) (*http.Client, *http.Client, error) {
	pins := pki.NewMemoryPins()
	if err := pins.Add(pki.Coordinator("dev"), coordPin); err != nil {
		return nil, nil, err
	}
	v, err := pki.NewVerifier(pki.VerifierConfig{CA: p.ca.Certificate(), Pins: pins, CRL: p.ca.CRLSource()})
	if err != nil {
		return nil, nil, err
	}
	cfg, err := pki.ClientTLSConfig(pki.ClientConfig{Verifier: v, Server: pki.Coordinator("dev"),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }})
	if err != nil {
		return nil, nil, err
	}
	t := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4,
		ResponseHeaderTimeout: 90 * time.Second}
	var rt, bulk http.RoundTripper = t, coord.HTTP1Transport(t)
	if wrap != nil {
		rt, bulk = wrap(rt), wrap(bulk)
	}
	return &http.Client{Transport: rt}, &http.Client{Transport: bulk}, nil
}

// startGateway builds a hospital's gateway and its local API.
func (n *Network) startGateway(ctx context.Context, opts Options, h *Hospital, p *pkiSetup, co *coordinator, i int, peers map[string]*gateway.Peer, logger *slog.Logger) error {
	cert, _, err := p.issue(ctx, pki.Hospital(h.ID), h.ID)
	if err != nil {
		return err
	}
	var wrap func(http.RoundTripper) http.RoundTripper
	if opts.WrapCoordinator != nil {
		wrap = func(rt http.RoundTripper) http.RoundTripper { return opts.WrapCoordinator(h.ID, rt) }
	}
	hc, bulk, err := coordClient(p, cert, co.pin, wrap)
	if err != nil {
		return err
	}
	cfg := gateway.Config{Hospital: h.ID, DataDir: filepath.Join(opts.DataDir, h.ID, "gateway"),
		DeliveryDir: filepath.Join(opts.DataDir, h.ID, "delivered"), Keys: h.keys, Peers: peers,
		Coordinator: &coord.Client{Base: co.urls[i%len(co.urls)], HTTP: hc, Bulk: bulk},
		FHIR:        h.tokenAS.gatewayFHIR(h.FHIR), Audit: h.node.Audit, Logger: logger,
		Reidentify: []string{"TREAT", "ETREAT"}}
	if opts.Gateway != nil {
		opts.Gateway(h.ID, &cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	h.Gateway = g
	ln, err := listen(gatewayPort(opts.BasePort), i)
	if err != nil {
		return err
	}
	h.GatewayURL = "http://" + ln.Addr().String() + gateway.APIBase
	hs := &http.Server{Handler: g.API(gateway.APIOptions{Authorize: clinicianOnly(h.auth)}), ReadHeaderTimeout: 10 * time.Second}
	n.serve(ctx, func() error { return hs.Serve(ln) }, hs)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = g.Run(ctx, !opts.NoAutoReceive)
		g.Stop()
	}()
	return nil
}

func gatewayPort(base int) int {
	if base <= 0 {
		return base
	}
	return base + 10 // 18091, 18092 by default
}

// registryExport is every hospital's public entry, as the peers file.
func registryExport(hs []transfer.Hospital) ([]byte, error) { return json.MarshalIndent(hs, "", "  ") }

var _ = x509.Certificate{}

// clinicianOnly admits to the gateway API the callers the hospital's FHIR
// server authenticates as clinicians (the token file's holder), not auditors.
func clinicianOnly(auth fhirserver.Authenticator) func(*http.Request) error {
	return func(r *http.Request) error {
		p, err := auth.Authenticate(r)
		if err != nil {
			return err
		}
		if p.Role != "" && p.Role != fhirserver.RoleClinician {
			return errors.New("devnet: the gateway API is for the clinician-administrator")
		}
		return nil
	}
}
