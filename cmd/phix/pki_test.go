package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"phix/pki"
	"phix/suite"
)

// pkiRun runs phix pki with in-memory output and the given passphrase.
func pkiRun(t *testing.T, pass string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	saved := pkiOut
	pkiOut = pkiIO{stdout: &out, stderr: &errb, passphrase: func() ([]byte, error) { return []byte(pass), nil }}
	defer func() { pkiOut = saved }()
	err := runPKI(context.Background(), args)
	return out.String() + errb.String(), err
}

var pinRE = regexp.MustCompile(`pin (sha256/\S+)`)
var serialRE = regexp.MustCompile(`serial ([0-9a-f]+)`)

func TestPKICLI(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	const pass = "operator passphrase"
	if _, err := pkiRun(t, pass, "init", "--dir", ca); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, "hospital-a")
	out, err := pkiRun(t, pass, "issue", "--dir", ca, "--hospital", "hospital-a", "--ip", "127.0.0.1", "--lifetime", "12h", "--out", a)
	if err != nil {
		t.Fatal(err)
	}
	pin := pinRE.FindStringSubmatch(out)[1]
	serial := serialRE.FindStringSubmatch(out)[1]
	if fi, _ := os.Stat(a + ".key"); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %o", fi.Mode().Perm())
	}
	if _, err := tls.LoadX509KeyPair(a+".crt", a+".key"); err != nil {
		t.Fatalf("standard TLS cannot load the pair: %v", err)
	}
	if out, _ := pkiRun(t, "", "pin", a+".crt"); strings.TrimSpace(out) != pin {
		t.Fatalf("pin %q, issue said %q", out, pin)
	}
	// Same-key renewal keeps the pin; a new key changes it.
	out, err = pkiRun(t, pass, "renew", "--dir", ca, "--cert", a+".crt", "--out", a+"-r1")
	if err != nil || pinRE.FindStringSubmatch(out)[1] != pin || strings.Contains(out, "pin changed") {
		t.Fatalf("renew same key: %v %s", err, out)
	}
	out, err = pkiRun(t, pass, "renew", "--dir", ca, "--cert", a+".crt", "--new-key", "--out", a+"-r2")
	if err != nil || pinRE.FindStringSubmatch(out)[1] == pin || !strings.Contains(out, "pin changed") {
		t.Fatalf("renew new key: %v %s", err, out)
	}
	if _, err := tls.LoadX509KeyPair(a+"-r2.crt", a+"-r2.key"); err != nil {
		t.Fatal(err)
	}
	if _, err := pkiRun(t, pass, "revoke", "--dir", ca, "--serial", serial, "--reason", "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	crl := filepath.Join(dir, "network.crl")
	if out, err := pkiRun(t, pass, "crl", "--dir", ca, "--out", crl); err != nil || !strings.Contains(out, "1 revocations") {
		t.Fatalf("crl: %v %s", err, out)
	}
	// The written CRL revokes the certificate for a verifier reading the file.
	caCert, _ := pki.ReadCertificateFile(filepath.Join(ca, pki.CACertFile))
	pins := pki.NewMemoryPins()
	pins.Add(pki.Hospital("hospital-a"), pin)
	v, err := pki.NewVerifier(pki.VerifierConfig{CA: caCert, Pins: pins, CRL: pki.CRLFile(crl)})
	if err != nil {
		t.Fatal(err)
	}
	pair, _ := tls.LoadX509KeyPair(a+".crt", a+".key")
	if _, err := v.Verify(context.Background(), []*x509.Certificate{pair.Leaf}, x509.ExtKeyUsageClientAuth, nil); pki.Code(err) != pki.CodeRevoked {
		t.Fatalf("verify after revoke: %v", err)
	}

	// Identity bindings for both suites, from the raw key and from a key export.
	for _, id := range []suite.ID{suite.Intl, suite.GM} {
		s, _ := suite.Lookup(id)
		sk, _ := s.GenerateSigningKey()
		raw := filepath.Join(dir, string(id)+".pub")
		os.WriteFile(raw, []byte(base64.StdEncoding.EncodeToString(sk.Public().Bytes())+"\n"), 0o644)
		export, _ := json.Marshal([]map[string]any{{"hospital": "hospital-a", "purpose": "signing", "suite": string(id), "version": 1, "public": sk.Public().Bytes()}})
		exp := filepath.Join(dir, string(id)+".json")
		os.WriteFile(exp, export, 0o644)
		for _, f := range []string{raw, exp} {
			out, err := pkiRun(t, pass, "identity", "--dir", ca, "--hospital", "hospital-a", "--suite", string(id), "--signing-key", f)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			vb, err := pki.VerifyIdentityBinding([]byte(out), caCert, time.Now())
			if err != nil || vb.KeyID != sk.KeyID() || vb.Subject.ID != "hospital-a" {
				t.Fatalf("%s: %v", f, err)
			}
		}
	}
}

func TestPKICLIErrors(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if _, err := pkiRun(t, "pw", "init", "--dir", ca); err != nil {
		t.Fatal(err)
	}
	gmKey := filepath.Join(dir, "gm.pub")
	s, _ := suite.Lookup(suite.GM)
	sk, _ := s.GenerateSigningKey()
	os.WriteFile(gmKey, sk.Public().Bytes(), 0o644)
	for _, tc := range []struct {
		name string
		pass string
		args []string
		want string
	}{
		{"no subcommand", "pw", nil, "missing subcommand"},
		{"unknown subcommand", "pw", []string{"frob"}, "unknown subcommand"},
		{"init twice", "pw", []string{"init", "--dir", ca}, "PKI-BAD-REQUEST"},
		{"wrong passphrase", "nope", []string{"issue", "--dir", ca, "--hospital", "h", "--out", filepath.Join(dir, "x")}, "PKI-KEY-FILE"},
		{"no passphrase", "", []string{"issue", "--dir", ca, "--hospital", "h", "--out", filepath.Join(dir, "x")}, "PHIX_PKI_PASSPHRASE"},
		{"no identity", "pw", []string{"issue", "--dir", ca, "--out", filepath.Join(dir, "x")}, "--hospital"},
		{"bad id", "pw", []string{"issue", "--dir", ca, "--hospital", "Bad_Id", "--out", filepath.Join(dir, "y")}, "PKI-BAD-REQUEST"},
		{"lifetime cap", "pw", []string{"issue", "--dir", ca, "--hospital", "h", "--lifetime", "720h", "--out", filepath.Join(dir, "z")}, "exceeds"},
		{"bad ip", "pw", []string{"issue", "--dir", ca, "--hospital", "h", "--ip", "nope", "--out", filepath.Join(dir, "w")}, "not an IP"},
		{"bad serial", "pw", []string{"revoke", "--dir", ca, "--serial", "xyz"}, "PKI-BAD-REQUEST"},
		{"unknown serial", "pw", []string{"revoke", "--dir", ca, "--serial", "abc"}, "PKI-UNKNOWN-SERIAL"},
		{"bad reason", "pw", []string{"revoke", "--dir", ca, "--serial", "abc", "--reason", "boredom"}, "--reason"},
		{"pin of nothing", "", []string{"pin", filepath.Join(dir, "missing.crt")}, "PKI-BAD-CERT"},
		{"key of the other suite", "pw", []string{"identity", "--dir", ca, "--hospital", "h", "--suite", "intl", "--signing-key", gmKey}, "not a ML-DSA-87"},
		{"bad suite", "pw", []string{"identity", "--dir", ca, "--hospital", "h", "--suite", "rsa", "--signing-key", gmKey}, "--suite"},
	} {
		out, err := pkiRun(t, tc.pass, tc.args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%s: err %v, output %q, want %q", tc.name, err, out, tc.want)
		}
	}
	// A refused issuance leaves no key file behind.
	if _, err := os.Stat(filepath.Join(dir, "z.key")); err == nil {
		t.Error("failed issuance left a key file")
	}
}
