package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCertificateProfile(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()
	before := time.Now()
	is, _, err := n.ca.IssueWithNewKey(ctx, IssueRequest{Principal: Hospital("hospital-a"), DNSNames: []string{"gw.hospital-a.example"}, IPAddresses: loopback})
	if err != nil {
		t.Fatal(err)
	}
	c := is.Certificate
	if c.Subject.CommonName != "hospital-a" || len(c.URIs) != 1 || c.URIs[0].String() != "urn:phix:hospital:hospital-a" {
		t.Fatalf("identity: CN %q URIs %v", c.Subject.CommonName, c.URIs)
	}
	if len(c.ExtKeyUsage) != 2 || c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Fatal("usage profile")
	}
	if life := c.NotAfter.Sub(before); life < 24*time.Hour-time.Minute || life > 24*time.Hour+time.Minute {
		t.Fatalf("default lifetime %s", life)
	}
	if skew := before.Sub(c.NotBefore); skew < 59*time.Second || skew > 2*time.Minute {
		t.Fatalf("backdate %s", skew)
	}
	if c.SerialNumber.BitLen() < 64 || c.SerialNumber.BitLen() > 128 {
		t.Fatalf("serial of %d bits", c.SerialNumber.BitLen())
	}
	if c.DNSNames[0] != "gw.hospital-a.example" || !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatal("endpoint names")
	}
	rec, ok, err := n.ca.Store().Issued(ctx, is.Serial)
	if err != nil || !ok || rec.Pin != is.Pin || rec.Principal != "urn:phix:hospital:hospital-a" || rec.Kind != "issue" {
		t.Fatalf("issuance log: %+v %v %v", rec, ok, err)
	}
}

func TestIssueFromCSR(t *testing.T) {
	n := newNetwork(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}, DNSNames: []string{"evil.example"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	is, err := n.ca.Issue(context.Background(), IssueRequest{Principal: Hospital("hospital-b"), CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	if is.Certificate.Subject.CommonName != "hospital-b" || len(is.Certificate.DNSNames) != 0 {
		t.Fatal("names must come from the request, not the CSR")
	}
	if pin, _ := PublicKeyPin(key.Public()); pin != is.Pin {
		t.Fatal("pin is not the CSR key's")
	}
	csr.Signature[5] ^= 1
	if _, err := n.ca.Issue(context.Background(), IssueRequest{Principal: Hospital("hospital-b"), CSR: csr}); Code(err) != CodeBadRequest {
		t.Fatalf("tampered CSR: %v", err)
	}
}

func TestIssueRejects(t *testing.T) {
	n := newNetwork(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		req  IssueRequest
		ok   bool
	}{
		{"ed25519", IssueRequest{Principal: Hospital("h1"), PublicKey: edPub}, true},
		{"uppercase id", IssueRequest{Principal: Hospital("Hospital-A"), PublicKey: ec.Public()}, false},
		{"empty id", IssueRequest{Principal: Hospital(""), PublicKey: ec.Public()}, false},
		{"id with colon", IssueRequest{Principal: Hospital("a:b"), PublicKey: ec.Public()}, false},
		{"unknown role", IssueRequest{Principal: Principal{Role: "admin", ID: "x"}, PublicKey: ec.Public()}, false},
		{"no key", IssueRequest{Principal: Hospital("h1")}, false},
		{"rsa key", IssueRequest{Principal: Hospital("h1"), PublicKey: rk.Public()}, false},
		{"p224 key", IssueRequest{Principal: Hospital("h1"), PublicKey: p224.Public()}, false},
		{"bad dns", IssueRequest{Principal: Hospital("h1"), PublicKey: ec.Public(), DNSNames: []string{"a..b"}}, false},
		{"negative lifetime", IssueRequest{Principal: Hospital("h1"), PublicKey: ec.Public(), Lifetime: -time.Hour}, false},
		{"over the cap", IssueRequest{Principal: Hospital("h1"), PublicKey: ec.Public(), Lifetime: 8 * 24 * time.Hour}, false},
	} {
		_, err := n.ca.Issue(context.Background(), tc.req)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if err != nil && Code(err) != CodeBadRequest {
			t.Errorf("%s: code %q", tc.name, Code(err))
		}
	}
}

func TestRevocationRules(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()
	c := n.issue(t, Hospital("hospital-a"), true)
	never, _ := ParseSerial("abcdef")
	if err := n.ca.RevokeCertificate(ctx, never, ReasonUnspecified); Code(err) != CodeUnknownSerial {
		t.Fatalf("unknown serial: %v", err)
	}
	if err := n.ca.RevokeCertificate(ctx, c.Leaf.SerialNumber, 99); Code(err) != CodeBadRequest {
		t.Fatalf("bad reason: %v", err)
	}
	for range 2 { // idempotent
		if err := n.ca.RevokeCertificate(ctx, c.Leaf.SerialNumber, ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
	}
	der, _ := n.ca.CRL(ctx)
	rl, err := x509.ParseRevocationList(der)
	if err != nil || len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].ReasonCode != ReasonKeyCompromise {
		t.Fatalf("CRL: %v %+v", err, rl)
	}
	if rl.NextUpdate.Sub(rl.ThisUpdate) < DefaultCRLValidity {
		t.Fatal("CRL validity")
	}
}

func TestDirCA(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	pass := []byte("correct horse battery staple")
	ca, err := InitDir(dir, CAConfig{}, pass, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitDir(dir, CAConfig{}, pass, Options{}); Code(err) != CodeBadRequest {
		t.Fatalf("second init: %v", err)
	}
	fi, _ := os.Stat(filepath.Join(dir, CAKeyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %o", fi.Mode().Perm())
	}
	kb, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !strings.Contains(string(kb), pemEncryptedKey) {
		t.Fatal("key not sealed")
	}
	is, _, err := ca.IssueWithNewKey(ctx, IssueRequest{Principal: Hospital("hospital-a"), IPAddresses: loopback})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Certificate.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("plain x509 verification of an issued certificate: %v", err)
	}
	if err := ca.RevokeCertificate(ctx, is.Certificate.SerialNumber, ReasonSuperseded); err != nil {
		t.Fatal(err)
	}

	passFn := func(p string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(p), nil } }
	if _, err := OpenDir(dir, passFn("wrong"), Options{}); Code(err) != CodeKeyFile {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := OpenDir(dir, nil, Options{}); Code(err) != CodeKeyFile {
		t.Fatalf("no passphrase: %v", err)
	}
	ca2, err := OpenDir(dir, passFn(string(pass)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	der, _ := ca2.CRL(ctx)
	st, err := loadCRL(der, ca2.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.revoked[is.Serial]; !ok {
		t.Fatal("revocation lost across reopen")
	}
	os.Chmod(filepath.Join(dir, CAKeyFile), 0o644)
	if _, err := OpenDir(dir, passFn(string(pass)), Options{}); Code(err) != CodeKeyFile {
		t.Fatalf("world-readable key: %v", err)
	}
}

func TestKeyFilePlainAndCorrupt(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	plain, _ := MarshalPrivateKey(key, nil)
	if k, err := ParsePrivateKey(plain, nil); err != nil || !k.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatalf("plain round trip: %v", err)
	}
	sealed, _ := MarshalPrivateKey(key, []byte("pw"))
	pw := func() ([]byte, error) { return []byte("pw"), nil }
	if _, err := ParsePrivateKey(sealed, pw); err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(sealed), "m=65536", "m=65537", 1)
	if _, err := ParsePrivateKey([]byte(tampered), pw); Code(err) != CodeKeyFile {
		t.Fatalf("tampered KDF header: %v", err)
	}
	if _, err := ParsePrivateKey([]byte("junk"), pw); Code(err) != CodeKeyFile {
		t.Fatalf("junk: %v", err)
	}
}

func TestDirStoreTornLine(t *testing.T) {
	dir := t.TempDir()
	st, _ := NewDirStore(dir)
	ctx := context.Background()
	st.AppendRevoked(ctx, RevokedRecord{Serial: "a1"})
	f, _ := os.OpenFile(filepath.Join(dir, RevokedLogFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"serial":"b2","rea`) // a crash mid-append
	f.Close()
	rs, err := st.Revoked(ctx)
	if err != nil || len(rs) != 1 {
		t.Fatalf("torn line read: %v %v", rs, err)
	}
	st.AppendRevoked(ctx, RevokedRecord{Serial: "c3"})
	rs, _ = st.Revoked(ctx)
	if len(rs) != 2 || rs[1].Serial != "c3" {
		t.Fatalf("append after a torn line: %+v", rs)
	}
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]string{"0x0A": "a", "de:ad:be:ef": "deadbeef", "00ff": "ff"} {
		n, err := ParseSerial(in)
		if err != nil || SerialString(n) != want {
			t.Errorf("%q: %v %v", in, n, err)
		}
	}
	for _, in := range []string{"", "0", "xyz", "-1", strings.Repeat("f", 41)} {
		if _, err := ParseSerial(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
