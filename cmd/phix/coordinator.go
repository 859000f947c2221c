package main

import (
	"context"
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
	"strings"
	"time"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/blob/fsblob"
	"phix/pki"
	"phix/queue/natsq"
	"phix/suite"
	"phix/transfer"
	"phix/transfer/transfersql"
)

func init() {
	register(command{name: "coordinator", summary: "run the transfer coordinator; manage its hospital registry", run: runCoordinator})
}

const coordinatorUsage = `usage:
  phix coordinator serve --db URL --data DIR --tls-ca FILE --tls-cert FILE --tls-key FILE --crl FILE [flags]
  phix coordinator hospitals add --db URL --file HOSPITAL.json
  phix coordinator hospitals list --db URL
  phix coordinator hospitals suspend --db URL ID`

func runCoordinator(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(coordinatorUsage)
	}
	switch args[0] {
	case "serve":
		return coordinatorServe(ctx, args[1:], nil)
	case "hospitals":
		if len(args) < 2 {
			return errors.New(coordinatorUsage)
		}
		return coordinatorHospitals(ctx, args[1], args[2:], os.Stdout)
	}
	return errors.New(coordinatorUsage)
}

func coordinatorHospitals(ctx context.Context, sub string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("coordinator hospitals "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	db := fs.String("db", "", "metadata database: postgres://... or a SQLite path")
	file := fs.String("file", "", "hospital entry as JSON (add)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" {
		return errors.New("coordinator hospitals: --db is required")
	}
	st, err := transfersql.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := transfer.Registry{Store: st}
	switch sub {
	case "add":
		b, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("coordinator hospitals add: read --file: %w", err)
		}
		var h transfer.Hospital
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil {
			return errors.New("coordinator hospitals add: the file is not a hospital entry in JSON")
		}
		h, err = reg.Add(ctx, h)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "added %s (%s)\n", h.ID, h.Region)
		return nil
	case "list":
		hs, err := st.Hospitals(ctx)
		if err != nil {
			return err
		}
		for _, h := range hs {
			fmt.Fprintf(out, "%s\t%s\t%s\t%s\t%s\n", h.ID, h.Region, h.Status, h.NameEN, h.NameZH)
		}
		return nil
	case "suspend":
		if fs.NArg() != 1 {
			return errors.New("coordinator hospitals suspend: give one hospital id")
		}
		if err := reg.Suspend(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(out, "suspended %s\n", fs.Arg(0))
		return nil
	}
	return errors.New(coordinatorUsage)
}

// coordinatorServe runs the coordinator until ctx ends. ready, if set,
// receives the listening address (tests).
func coordinatorServe(ctx context.Context, args []string, ready chan<- string) error {
	fs := flag.NewFlagSet("coordinator serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "127.0.0.1:8443", "listen address")
	db := fs.String("db", "", "metadata database: postgres://... or a SQLite path (default DATA/coordinator.db)")
	data := fs.String("data", "", "data directory (blobs, embedded NATS, audit log)")
	region := fs.String("region", "CN-SH", "region of the blob store (data residency)")
	allowed := fs.String("allowed-regions", "CN-*", "comma-separated allowed region patterns")
	natsURL := fs.String("nats-url", "", "external NATS JetStream URL (default: embedded)")
	adminTokenFile := fs.String("admin-token-file", "", "file holding the admin API bearer token")
	caFile := fs.String("tls-ca", "", "network CA certificate (PEM)")
	certFile := fs.String("tls-cert", "", "coordinator certificate (PEM)")
	keyFile := fs.String("tls-key", "", "coordinator private key (PEM)")
	crlFile := fs.String("crl", "", "the CA's current CRL (PEM or DER)")
	auditKey := fs.String("audit-key", "", "audit checkpoint signing key file (created if absent; default DATA/audit.key)")
	baseURL := fs.String("base-url", "", "external base URL for upload and download links")
	sweepEvery := fs.Duration("sweep-interval", 5*time.Minute, "how often the retention sweeper erases expired and delivered ciphertext")
	grace := fs.Duration("delivered-grace", 24*time.Hour, "how long ciphertext stays after the receipt (retention_until erases sooner)")
	adminListen := fs.String("admin-listen", "", "loopback address for the admin API, health and metrics without client certificates (e.g. 127.0.0.1:8444)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" {
		return errors.New("coordinator serve: --data is required")
	}
	if *caFile == "" || *certFile == "" || *keyFile == "" || *crlFile == "" {
		return errors.New("coordinator serve: --tls-ca, --tls-cert, --tls-key and --crl are required (hospitals authenticate with mutual TLS)")
	}
	if *db == "" {
		*db = filepath.Join(*data, "coordinator.db")
	}
	if *auditKey == "" {
		*auditKey = filepath.Join(*data, "audit.key")
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	st, err := transfersql.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	blobs, err := fsblob.New(filepath.Join(*data, "blobs"), *region)
	if err != nil {
		return err
	}
	qcfg := natsq.Config{URL: *natsURL}
	if *natsURL == "" {
		qcfg.StoreDir = filepath.Join(*data, "nats")
	}
	q, err := natsq.Open(ctx, qcfg)
	if err != nil {
		return err
	}
	defer q.Close()
	signer, err := loadOrCreateAuditKey(*auditKey)
	if err != nil {
		return err
	}
	ab, err := auditsqlite.Open(ctx, filepath.Join(*data, "audit.db"))
	if err != nil {
		return err
	}
	alog, err := audit.Open(ctx, ab, audit.Options{Origin: "coordinator.phix/audit", Signer: signer, Logger: logger})
	if err != nil {
		return err
	}
	defer alog.Close()
	var adminToken string
	if *adminTokenFile != "" {
		b, err := os.ReadFile(*adminTokenFile)
		if err != nil {
			return fmt.Errorf("coordinator serve: read --admin-token-file: %w", err)
		}
		adminToken = strings.TrimSpace(string(b))
	}
	srv, err := transfer.NewServer(transfer.Config{Store: st, Blobs: blobs, Queue: q, Auditor: alog, AdminToken: adminToken,
		Policy: transfer.PolicyConfig{AllowedRegions: strings.Split(*allowed, ",")}, BaseURL: *baseURL, Logger: logger,
		DeliveredGrace: *grace})
	if err != nil {
		return err
	}

	ca, err := pki.ReadCertificateFile(*caFile)
	if err != nil {
		return err
	}
	verifier, err := pki.NewVerifier(pki.VerifierConfig{CA: ca, Pins: transfer.PinStore{Store: st}, CRL: pki.CRLFile(*crlFile)})
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("coordinator serve: load TLS certificate: %w", err)
	}
	tcfg, err := pki.ServerTLSConfig(pki.ServerConfig{Verifier: verifier,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &pair, nil },
		ClaimedPeer:    transfer.ClaimedPeerFromSNI})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, TLSConfig: tcfg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	logger.Info("coordinator listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	go srv.RunSweeper(ctx, *sweepEvery)
	errc := make(chan error, 2)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	if *adminListen != "" {
		host, _, err := net.SplitHostPort(*adminListen)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return errors.New("coordinator serve: --admin-listen must be a loopback address")
		}
		aln, err := net.Listen("tcp", *adminListen)
		if err != nil {
			return err
		}
		// Hospital routes answer 401 here: there is no client certificate.
		as := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- as.Serve(aln) }()
		defer as.Close()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	}
}

func loadOrCreateAuditKey(path string) (suite.SigningKey, error) {
	s, _ := suite.Lookup(suite.Intl)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := s.GenerateSigningKey()
		if err != nil {
			return nil, err
		}
		if err := pki.WriteFileAtomic(path, k.Bytes(), 0o600); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	k, err := s.ParseSigningKey(b)
	if err != nil {
		return nil, errors.New("coordinator serve: --audit-key is not an intl signing key")
	}
	return k, nil
}
