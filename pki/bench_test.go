package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// pipeHandshake runs one full TLS handshake over an in-memory pipe.
func pipeHandshake(b *testing.B, server, client *tls.Config) time.Duration {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	s, c := tls.Server(c1, server), tls.Client(c2, client)
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkHandshake measures a full mutual TLS 1.3 handshake with the phix
// verifier on both sides against the same handshake with Go's plain chain
// verification only (RequireAndVerifyClientCert + RootCAs), alternating the
// two in one loop so machine noise hits both alike.
func BenchmarkHandshake(b *testing.B) {
	n := newNetwork(b)
	a := n.issue(b, Hospital("hospital-a"), true)
	verified := [2]*tls.Config{n.serverConfig(b, nil), n.clientConfig(b, a)}
	plain := [2]*tls.Config{
		{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: n.ca.Pool(), Certificates: []tls.Certificate{*n.coord}},
		{MinVersion: tls.VersionTLS13, RootCAs: n.ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{*a}},
	}
	var tv, tp time.Duration
	b.ResetTimer()
	for b.Loop() {
		tv += pipeHandshake(b, verified[0], verified[1])
		tp += pipeHandshake(b, plain[0], plain[1])
	}
	b.ReportMetric(float64(tv.Nanoseconds())/float64(b.N), "verified-ns/hs")
	b.ReportMetric(float64(tp.Nanoseconds())/float64(b.N), "plain-ns/hs")
	b.ReportMetric(float64(tv)/float64(tp), "ratio")
}

// BenchmarkVerify measures the per-connection callback (chain, validity,
// identity, cached CRL, pin) against a bare x509 chain verification.
func BenchmarkVerify(b *testing.B) {
	n := newNetwork(b)
	a := n.issue(b, Hospital("hospital-a"), true)
	chain := []*x509.Certificate{a.Leaf}
	ctx := context.Background()
	opts := x509.VerifyOptions{Roots: n.ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	var tv, tp time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := n.verifier.Verify(ctx, chain, x509.ExtKeyUsageClientAuth, ExpectRole(RoleHospital)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := a.Leaf.Verify(opts); err != nil {
			b.Fatal(err)
		}
		tv += t1.Sub(t0)
		tp += time.Since(t1)
	}
	b.ReportMetric(float64(tv.Nanoseconds())/float64(b.N), "verify-ns/op")
	b.ReportMetric(float64(tp.Nanoseconds())/float64(b.N), "x509-ns/op")
	b.ReportMetric(float64(tv)/float64(tp), "ratio")
}
