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
	"phix/blob"
	"phix/blob/fsblob"
	"phix/blob/s3blob"
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
  phix coordinator serve --config FILE [flags that override the file]
  phix coordinator serve --data DIR --tls-ca FILE --tls-cert FILE --tls-key FILE --crl FILE [--db URL] [flags]
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
	cfg := defaultCoordinatorConfig()
	path, err := configFlag(args)
	if err != nil {
		return err
	}
	if path != "" {
		if cfg, err = loadCoordinatorConfig(path); err != nil {
			return err
		}
	}
	fs := flag.NewFlagSet("coordinator serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("config", "", "YAML configuration file (docs/examples/coordinator.yaml); flags override it")
	cfg.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.resolve(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	level, _ := cfg.slogLevel()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	st, err := transfersql.Open(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close()
	blobs, err := openCoordinatorBlobs(ctx, &cfg)
	if err != nil {
		return err
	}
	q, err := natsq.Open(ctx, natsq.Config{URL: cfg.NATS.URL, StoreDir: cfg.NATS.StoreDir})
	if err != nil {
		return err
	}
	defer q.Close()
	signer, err := loadOrCreateAuditKey(cfg.Audit.Key)
	if err != nil {
		return err
	}
	ab, err := auditsqlite.Open(ctx, filepath.Join(cfg.DataDir, "audit.db"))
	if err != nil {
		return err
	}
	alog, err := audit.Open(ctx, ab, audit.Options{Origin: "coordinator.phix/audit", Signer: signer, Logger: logger})
	if err != nil {
		return err
	}
	defer alog.Close()
	var adminToken string
	if cfg.AdminTokenFile != "" {
		b, err := os.ReadFile(cfg.AdminTokenFile)
		if err != nil {
			return fmt.Errorf("coordinator serve: read --admin-token-file: %w", err)
		}
		adminToken = strings.TrimSpace(string(b))
	}
	srv, err := transfer.NewServer(transfer.Config{Store: st, Blobs: blobs, Queue: q, Auditor: alog, AdminToken: adminToken,
		Policy: transfer.PolicyConfig{AllowedRegions: cfg.Policy.AllowedRegions, ConsentMaxAge: cfg.Policy.ConsentMaxAge,
			MaxRetention: cfg.Policy.MaxRetention},
		BaseURL: cfg.BaseURL, Logger: logger, ID: cfg.ID, CapabilityTTL: cfg.CapabilityTTL, MaxFileSize: cfg.Limits.MaxFileSize,
		DeliveredGrace: cfg.Retention.DeliveredGrace})
	if err != nil {
		return err
	}

	ca, err := pki.ReadCertificateFile(cfg.TLS.CA)
	if err != nil {
		return err
	}
	verifier, err := pki.NewVerifier(pki.VerifierConfig{CA: ca, Pins: transfer.NewPinStore(st), CRL: pki.CRLFile(cfg.TLS.CRL)})
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
	if err != nil {
		return fmt.Errorf("coordinator serve: load TLS certificate: %w", err)
	}
	tcfg, err := pki.ServerTLSConfig(pki.ServerConfig{Verifier: verifier,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &pair, nil },
		ClaimedPeer:    transfer.ClaimedPeerFromSNI})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, TLSConfig: tcfg, ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout, IdleTimeout: cfg.Limits.IdleTimeout,
		MaxHeaderBytes: cfg.Limits.MaxHeaderBytes, HTTP2: transfer.HTTP2Config(),
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	logger.Info("coordinator listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	go srv.RunSweeper(ctx, cfg.Retention.SweepInterval)
	errc := make(chan error, 2)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	if cfg.AdminListen != "" {
		host, _, err := net.SplitHostPort(cfg.AdminListen)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return errors.New("coordinator serve: --admin-listen must be a loopback address")
		}
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return err
		}
		// Hospital routes answer 401 here: there is no client certificate.
		as := &http.Server{Handler: srv, ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout, MaxHeaderBytes: cfg.Limits.MaxHeaderBytes}
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

// openCoordinatorBlobs opens the configured blob backend.
func openCoordinatorBlobs(ctx context.Context, cfg *coordinatorConfig) (blob.Store, error) {
	if cfg.Blob.Backend == "fs" {
		st, err := fsblob.New(cfg.Blob.Dir, cfg.Blob.Region)
		if err != nil {
			return nil, err
		}
		if cfg.Blob.NoDataSync {
			st.NoDataSync()
		}
		return st, nil
	}
	s := cfg.Blob.S3
	sc := s3blob.Config{Endpoint: s.Endpoint, Bucket: s.Bucket, Prefix: s.Prefix, SigningRegion: s.SigningRegion,
		Residency: cfg.Blob.Region, PartSize: s.PartSize}
	if s.AccessKeyEnv != "" {
		sc.AccessKey, sc.SecretKey = os.Getenv(s.AccessKeyEnv), os.Getenv(s.SecretKeyEnv)
	}
	return s3blob.New(ctx, sc)
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
