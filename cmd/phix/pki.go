package main

// phix pki: the network CA (docs/pki.md). Subcommands only parse flags and
// call package pki.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"phix/pki"
	"phix/suite"
)

func init() {
	register(command{name: "pki", summary: "network CA: init, issue, renew, revoke, crl, pin, identity", run: runPKI})
}

const pkiUsage = `usage: phix pki <subcommand> [flags]

  init      create a CA in --dir (ca.crt, ca.key 0600, issuance log)
  issue     issue a hospital (or coordinator) certificate: NAME.crt, NAME.key
  renew     re-issue a certificate before it expires (same key, or --new-key)
  revoke    revoke a serial (it appears on the next CRL)
  crl       write a freshly signed CRL
  pin       print the SPKI pin (sha256/...) of a certificate
  identity  sign a binding of a hospital's suite signing key (intl or gm)

The CA key is sealed with $PHIX_PKI_PASSPHRASE when it is set (Argon2id +
AES-256-GCM); init without it writes the key in the clear (mode 0600).
`

// pkiIO is what the commands touch outside their arguments.
type pkiIO struct {
	stdout, stderr io.Writer
	passphrase     func() ([]byte, error)
}

var pkiOut = pkiIO{stdout: os.Stdout, stderr: os.Stderr, passphrase: pkiEnvPassphrase}

func pkiEnvPassphrase() ([]byte, error) {
	p := os.Getenv("PHIX_PKI_PASSPHRASE")
	if p == "" {
		return nil, nil
	}
	return []byte(p), nil
}

func runPKI(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(pkiOut.stderr, pkiUsage)
		if len(args) == 0 {
			return &exitError{code: 2, err: errors.New("missing subcommand")}
		}
		return nil
	}
	sub := map[string]func(context.Context, []string) error{
		"init": pkiInit, "issue": pkiIssue, "renew": pkiRenew, "revoke": pkiRevoke,
		"crl": pkiCRL, "pin": pkiPin, "identity": pkiIdentity,
	}[args[0]]
	if sub == nil {
		return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q (see 'phix pki help')", args[0])}
	}
	return sub(ctx, args[1:])
}

func pkiFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("phix pki "+name, flag.ContinueOnError)
	fs.SetOutput(pkiOut.stderr)
	return fs
}

func pkiParse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 && fs.Name() != "phix pki pin" {
		return pkiUsageErr("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func pkiUsageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// pkiMulti collects a repeatable flag.
type pkiMulti []string

// String implements flag.Value.
func (m *pkiMulti) String() string { return strings.Join(*m, ",") }

// Set implements flag.Value.
func (m *pkiMulti) Set(v string) error { *m = append(*m, v); return nil }

func openCA(dir string) (*pki.CA, error) {
	if dir == "" {
		return nil, pkiUsageErr("--dir is required")
	}
	return pki.OpenDir(dir, func() ([]byte, error) {
		p, err := pkiOut.passphrase()
		if err == nil && len(p) == 0 {
			return nil, errors.New("the CA key is sealed: set $PHIX_PKI_PASSPHRASE")
		}
		return p, err
	}, pki.Options{})
}

func pkiInit(_ context.Context, args []string) error {
	fs := pkiFlags("init")
	dir := fs.String("dir", "", "CA directory (required; created)")
	name := fs.String("name", "phix network CA", "CA common name")
	validity := fs.Duration("validity", pki.DefaultCAValidity, "CA certificate validity")
	if err := pkiParse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return pkiUsageErr("--dir is required")
	}
	cfg := pki.CAConfig{Name: *name, Validity: *validity}
	pass, err := pkiOut.passphrase()
	if err != nil {
		return err
	}
	if len(pass) == 0 {
		fmt.Fprintln(pkiOut.stderr, "warning: $PHIX_PKI_PASSPHRASE is not set; the CA key is written unsealed (mode 0600)")
	}
	ca, err := pki.InitDir(*dir, cfg, pass, pki.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(pkiOut.stdout, "created CA %q in %s\npin %s\n", *name, *dir, pki.SPKIHash(ca.Certificate()))
	return nil
}

// principalFlags reads --hospital or --coordinator.
func principalFlags(fs *flag.FlagSet) func() (pki.Principal, error) {
	h := fs.String("hospital", "", "hospital id")
	c := fs.String("coordinator", "", "coordinator id (instead of --hospital)")
	return func() (pki.Principal, error) {
		switch {
		case *h != "" && *c == "":
			return pki.Hospital(*h), nil
		case *c != "" && *h == "":
			return pki.Coordinator(*c), nil
		default:
			return pki.Principal{}, pkiUsageErr("give exactly one of --hospital and --coordinator")
		}
	}
}

func pkiIssue(ctx context.Context, args []string) error {
	fs := pkiFlags("issue")
	dir := caDirFlag(fs)
	who := principalFlags(fs)
	var dns, ips pkiMulti
	fs.Var(&dns, "dns", "DNS name of the endpoint (repeatable)")
	fs.Var(&ips, "ip", "IP address of the endpoint (repeatable)")
	lifetime := fs.Duration("lifetime", pki.DefaultLifetime, "certificate lifetime (capped at 7 days)")
	csrFile := fs.String("csr", "", "PEM CSR holding the key (no NAME.key is written)")
	out := fs.String("out", "", "output base name: writes NAME.crt and NAME.key (required)")
	p, err := pkiParsePrincipal(fs, args, who)
	if err != nil {
		return err
	}
	if *out == "" {
		return pkiUsageErr("--out is required")
	}
	req := pki.IssueRequest{Principal: p, DNSNames: dns, Lifetime: *lifetime}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return pkiUsageErr("--ip %q is not an IP address", s)
		}
		req.IPAddresses = append(req.IPAddresses, ip)
	}
	var keyPEM []byte
	if *csrFile != "" {
		b, err := os.ReadFile(*csrFile)
		if err != nil {
			return err
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
			return errors.New("--csr: no PEM CERTIFICATE REQUEST")
		}
		if req.CSR, err = x509.ParseCertificateRequest(blk.Bytes); err != nil {
			return fmt.Errorf("--csr: %w", err)
		}
	} else {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		req.PublicKey = key.Public()
		if keyPEM, err = pki.MarshalPrivateKey(key, nil); err != nil {
			return err
		}
	}
	ca, err := openCA(*dir)
	if err != nil {
		return err
	}
	is, err := writeKeyAndCert(*out, keyPEM, func() (*pki.Issued, error) { return ca.Issue(ctx, req) })
	if err != nil {
		return err
	}
	fmt.Fprintf(pkiOut.stdout, "issued %s serial %s until %s\npin %s\n", p, is.Serial, is.Certificate.NotAfter.UTC().Format(time.RFC3339), is.Pin)
	return nil
}

// caDirFlag defines --dir, the CA directory every CA subcommand needs.
func caDirFlag(fs *flag.FlagSet) *string {
	return fs.String("dir", "", "CA directory (required)")
}

// pkiParsePrincipal parses args and then the --hospital/--coordinator choice.
func pkiParsePrincipal(fs *flag.FlagSet, args []string, who func() (pki.Principal, error)) (pki.Principal, error) {
	if err := pkiParse(fs, args); err != nil {
		return pki.Principal{}, err
	}
	return who()
}

// writeKeyAndCert writes NAME.key (when keyPEM is set) before the CA acts,
// so a certificate is never logged for a key that was then lost; it removes
// the key again when the CA refuses, and writes NAME.crt.
func writeKeyAndCert(out string, keyPEM []byte, issue func() (*pki.Issued, error)) (*pki.Issued, error) {
	if keyPEM != nil {
		if err := writeExclusive(out+".key", keyPEM, 0o600); err != nil {
			return nil, err
		}
	}
	is, err := issue()
	if err != nil {
		if keyPEM != nil {
			os.Remove(out + ".key")
		}
		return nil, err
	}
	if err := pki.WriteFileAtomic(out+".crt", is.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return is, nil
}

func writeExclusive(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func pkiRenew(ctx context.Context, args []string) error {
	fs := pkiFlags("renew")
	dir := caDirFlag(fs)
	certFile := fs.String("cert", "", "the certificate to renew (required)")
	newKey := fs.Bool("new-key", false, "generate a new key (the pin changes: update the registry)")
	lifetime := fs.Duration("lifetime", pki.DefaultLifetime, "certificate lifetime (capped at 7 days)")
	out := fs.String("out", "", "output base name: NAME.crt (and NAME.key with --new-key) (required)")
	if err := pkiParse(fs, args); err != nil {
		return err
	}
	if *certFile == "" || *out == "" {
		return pkiUsageErr("--cert and --out are required")
	}
	cur, err := pki.ReadCertificateFile(*certFile)
	if err != nil {
		return err
	}
	ca, err := openCA(*dir)
	if err != nil {
		return err
	}
	var pub any
	var keyPEM []byte
	if *newKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		pub = key.Public()
		if keyPEM, err = pki.MarshalPrivateKey(key, nil); err != nil {
			return err
		}
	}
	// A new key goes to a new file; never overwrite the key in use.
	is, err := writeKeyAndCert(*out, keyPEM, func() (*pki.Issued, error) { return ca.Renew(ctx, cur, pub, *lifetime) })
	if err != nil {
		return err
	}
	fmt.Fprintf(pkiOut.stdout, "renewed serial %s as %s until %s\npin %s\n", pki.SerialString(cur.SerialNumber), is.Serial, is.Certificate.NotAfter.UTC().Format(time.RFC3339), is.Pin)
	if is.PinChanged {
		fmt.Fprintln(pkiOut.stdout, "pin changed: add the new pin to the registry before using the new certificate")
	}
	return nil
}

func pkiRevoke(ctx context.Context, args []string) error {
	fs := pkiFlags("revoke")
	dir := caDirFlag(fs)
	serial := fs.String("serial", "", "serial number, hex (required)")
	reason := fs.String("reason", "unspecified", "unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold")
	if err := pkiParse(fs, args); err != nil {
		return err
	}
	code, ok := pki.ReasonNames[*reason]
	if !ok {
		return pkiUsageErr("unknown --reason %q", *reason)
	}
	n, err := pki.ParseSerial(*serial)
	if err != nil {
		return err
	}
	ca, err := openCA(*dir)
	if err != nil {
		return err
	}
	if err := ca.RevokeCertificate(ctx, n, code); err != nil {
		return err
	}
	fmt.Fprintf(pkiOut.stdout, "revoked %s (%s); publish a new CRL: phix pki crl\n", pki.SerialString(n), *reason)
	return nil
}

func pkiCRL(ctx context.Context, args []string) error {
	fs := pkiFlags("crl")
	dir := caDirFlag(fs)
	out := fs.String("out", "", "output file (required; replaced atomically)")
	der := fs.Bool("der", false, "write DER instead of PEM")
	if err := pkiParse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return pkiUsageErr("--out is required")
	}
	ca, err := openCA(*dir)
	if err != nil {
		return err
	}
	crl, err := ca.CRL(ctx)
	if err != nil {
		return err
	}
	rl, _ := x509.ParseRevocationList(crl)
	if !*der {
		crl = pki.EncodeCRLPEM(crl)
	}
	if err := pki.WriteFileAtomic(*out, crl, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(pkiOut.stdout, "CRL with %d revocations, next update %s\n", len(rl.RevokedCertificateEntries), rl.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}

func pkiPin(_ context.Context, args []string) error {
	fs := pkiFlags("pin")
	if err := pkiParse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return pkiUsageErr("usage: phix pki pin CERT")
	}
	c, err := pki.ReadCertificateFile(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintln(pkiOut.stdout, pki.SPKIHash(c))
	return nil
}

func pkiIdentity(ctx context.Context, args []string) error {
	fs := pkiFlags("identity")
	dir := caDirFlag(fs)
	who := principalFlags(fs)
	suiteName := fs.String("suite", "", "intl or gm (required)")
	keyFile := fs.String("signing-key", "", "the signing public key: 'phix keys export-public' JSON, PEM, base64 or raw (required)")
	lifetime := fs.Duration("lifetime", 365*24*time.Hour, "binding validity")
	out := fs.String("out", "", "write the binding here (default stdout)")
	p, err := pkiParsePrincipal(fs, args, who)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return pkiUsageErr("--signing-key is required")
	}
	s, err := suite.Lookup(suite.ID(*suiteName))
	if err != nil {
		return pkiUsageErr("--suite must be intl or gm")
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, err := parseSigningPublicKey(b, s, p)
	if err != nil {
		return err
	}
	ca, err := openCA(*dir)
	if err != nil {
		return err
	}
	raw, bd, err := ca.BindIdentity(ctx, p, key, *lifetime)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = pkiOut.stdout.Write(raw)
		return err
	}
	if err := pki.WriteFileAtomic(*out, raw, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(pkiOut.stdout, "bound %s key %s (%s) for %s until %s\n", bd.Algorithm, bd.KeyID, bd.Suite, p, bd.NotAfter.Format(time.RFC3339))
	return nil
}

// parseSigningPublicKey reads a suite signing public key from the output of
// 'phix keys export-public' (the newest signing key of the suite), a PEM
// block, base64 text or raw bytes.
func parseSigningPublicKey(b []byte, s suite.Suite, p pki.Principal) (suite.VerifyKey, error) {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '[' {
		var keys []struct {
			Hospital string `json:"hospital"`
			Purpose  string `json:"purpose"`
			Suite    string `json:"suite"`
			Version  int    `json:"version"`
			Public   []byte `json:"public"`
		}
		if err := json.Unmarshal(t, &keys); err != nil {
			return nil, errors.New("--signing-key: not a key export")
		}
		best := -1
		for i, k := range keys {
			if k.Purpose == "signing" && k.Suite == string(s.ID()) && (k.Hospital == "" || k.Hospital == p.ID) &&
				(best < 0 || k.Version > keys[best].Version) {
				best = i
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("--signing-key: no %s signing key for %s in the export", s.ID(), p.ID)
		}
		t = keys[best].Public
	} else if blk, _ := pem.Decode(t); blk != nil {
		t = blk.Bytes
	} else if d, err := base64.StdEncoding.DecodeString(string(t)); err == nil {
		t = d
	} else {
		t = b
	}
	k, err := s.ParseVerifyKey(t)
	if err != nil {
		return nil, fmt.Errorf("--signing-key: not a %s public key", s.SignatureAlgorithm())
	}
	return k, nil
}
