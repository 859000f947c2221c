package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// network is a CA, a pin registry and a verifier, as the coordinator has them.
type network struct {
	ca       *CA
	caKey    crypto.Signer
	pins     *MemoryPins
	verifier *Verifier
	coord    *tls.Certificate // the coordinator's server certificate, pinned
}

var loopback = []net.IP{net.ParseIP("127.0.0.1")}

func newNetwork(t testing.TB) *network {
	t.Helper()
	dir := t.TempDir()
	st, err := NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The CA was made ten days ago, so certificates backdated by a test clock still chain.
	past := time.Now().Add(-10 * 24 * time.Hour)
	ca0, key, err := NewCA(CAConfig{Name: "test network CA"}, Options{Store: st, Now: func() time.Time { return past }})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(ca0.Certificate(), key, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	n := &network{ca: ca, caKey: key, pins: NewMemoryPins()}
	n.verifier, err = NewVerifier(VerifierConfig{CA: ca.Certificate(), Pins: n.pins, CRL: ca.CRLSource()})
	if err != nil {
		t.Fatal(err)
	}
	n.coord = n.issue(t, Coordinator("region-1"), true)
	return n
}

// issue makes a certificate for p with a new key, pinned if pin is set.
func (n *network) issue(t testing.TB, p Principal, pin bool) *tls.Certificate {
	t.Helper()
	is, key, err := n.ca.IssueWithNewKey(context.Background(), IssueRequest{Principal: p, IPAddresses: loopback})
	if err != nil {
		t.Fatal(err)
	}
	if pin {
		if err := n.pins.Add(p, is.Pin); err != nil {
			t.Fatal(err)
		}
	}
	return is.TLSCertificate(key)
}

// selfSigned makes a self-signed leaf that claims p.
func selfSigned(t testing.TB, p Principal) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(p.URI())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: p.ID},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		URIs:        []*url.URL{u}, IPAddresses: loopback,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func staticCert(c *tls.Certificate) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c, nil }
}

func staticClientCert(c *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c, nil }
}

// serverConfig is the coordinator's server side.
func (n *network) serverConfig(t testing.TB, mod func(*ServerConfig)) *tls.Config {
	t.Helper()
	sc := ServerConfig{Verifier: n.verifier, GetCertificate: staticCert(n.coord)}
	if mod != nil {
		mod(&sc)
	}
	cfg, err := ServerTLSConfig(sc)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// clientConfig is a gateway's client side presenting cert.
func (n *network) clientConfig(t testing.TB, cert *tls.Certificate) *tls.Config {
	t.Helper()
	cfg, err := ClientTLSConfig(ClientConfig{Verifier: n.verifier, GetClientCertificate: staticClientCert(cert), Server: Coordinator("region-1")})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// handshake runs one real TLS handshake over loopback and returns the
// server's and the client's errors.
func handshake(t testing.TB, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			// TLS 1.3 client certificates are checked after the client's
			// Finished: read so the client learns of any refusal.
			_, err = c.Write([]byte("ok"))
		}
		done <- err
	}()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), client)
	if err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 2)
		_, err = c.Read(buf)
		c.Close()
	}
	return <-done, err
}
