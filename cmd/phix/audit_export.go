package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"phix/audit/siem"
)

const auditExportUsage = `usage:
  phix audit export --db URL --to TARGET [--name SINK] [--once]
                    [--ca FILE --cert FILE --key FILE] [--hostname NAME]

TARGET is one of:
  relp://HOST:PORT    RFC 5424 over RELP in TLS (rsyslog imrelp): exactly-once
  syslog://HOST:PORT  RFC 5424 over TLS, RFC 5425 framing: at-least-once
  file:PATH           JSON lines, fsynced per batch: exactly-once
Network targets need --ca (the receiver's CA) and --cert/--key (our client
certificate). The cursor is kept in the audit database under --name
(default: the target's scheme), so a restart resumes where delivery stopped.
--once delivers everything logged so far and exits; otherwise it runs until
interrupted`

// auditExport runs a SIEM exporter over the audit log (docs/audit.md, "SIEM export").
func auditExport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	db := fs.String("db", "", "audit database URL")
	to := fs.String("to", "", "relp://HOST:PORT, syslog://HOST:PORT or file:PATH")
	name := fs.String("name", "", "cursor name")
	once := fs.Bool("once", false, "deliver what is logged now, then exit")
	caFile := fs.String("ca", "", "CA certificate(s) of the receiver (PEM)")
	certFile := fs.String("cert", "", "client certificate (PEM)")
	keyFile := fs.String("key", "", "client private key (PEM)")
	hostname := fs.String("hostname", "", "HOSTNAME field of the syslog header")
	batch := fs.Int("batch", 200, "events per delivery")
	pos, err := auditParse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: 2, err: errors.New("export takes no arguments\n" + auditExportUsage)}
	}
	if *batch <= 0 || *batch > 10000 {
		return &exitError{code: 2, err: errors.New("--batch must be between 1 and 10000")}
	}
	sink, err := exportSink(*to, *name, *caFile, *certFile, *keyFile, *hostname)
	if err != nil {
		return err
	}
	if c, ok := sink.(io.Closer); ok {
		defer c.Close()
	}
	b, err := auditOpen(ctx, *db)
	if err != nil {
		return err
	}
	defer b.Close()
	ex := &siem.Exporter{Source: b, Sink: sink, Batch: *batch, Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
	if !*once {
		if err := ex.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	total := 0
	for {
		n, err := ex.Step(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			fmt.Fprintf(auditStdout, "delivered %d events to %s\n", total, sink.Name())
			return nil
		}
		total += n
	}
}

// exportSink builds the sink a --to target names.
func exportSink(to, name, caFile, certFile, keyFile, hostname string) (siem.Sink, error) {
	scheme, rest, ok := strings.Cut(to, ":")
	if !ok || rest == "" {
		return nil, &exitError{code: 2, err: errors.New("--to is required\n" + auditExportUsage)}
	}
	if name == "" {
		name = scheme
	}
	if scheme == "file" {
		f, err := siem.OpenFile(name, rest)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	if scheme != "relp" && scheme != "syslog" {
		return nil, &exitError{code: 2, err: fmt.Errorf("--to: unknown scheme %q (relp, syslog or file)", auditTrunc(scheme))}
	}
	addr, found := strings.CutPrefix(rest, "//")
	if !found {
		return nil, &exitError{code: 2, err: fmt.Errorf("--to %s: want %s://HOST:PORT", scheme, scheme)}
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--to: %v", err)}
	}
	tc, err := exportTLS(addr, caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if scheme == "relp" {
		return &siem.RELP{SinkName: name, Addr: addr, TLS: tc, Hostname: hostname, Timeout: 30 * time.Second}, nil
	}
	return &siem.Syslog{SinkName: name, Addr: addr, TLS: tc, Hostname: hostname, Timeout: 30 * time.Second}, nil
}

// exportTLS is the client side of mutual TLS to a SIEM receiver.
func exportTLS(addr, caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" || certFile == "" || keyFile == "" {
		return nil, &exitError{code: 2, err: errors.New("network targets need --ca, --cert and --key")}
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("read --ca: %w", err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, &exitError{code: 2, err: errors.New("--ca holds no PEM certificate")}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, &exitError{code: 2, err: errors.New("--cert/--key do not load as a key pair")}
	}
	host, _, _ := net.SplitHostPort(addr)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: host, MinVersion: tls.VersionTLS12}, nil
}
