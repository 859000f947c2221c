package pki

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
)

// TestResumptionRechecks: a resumed TLS session (no certificate exchanged)
// is still checked against the current CRL and pins, so a revocation cuts
// off a peer holding a session ticket.
func TestResumptionRechecks(t *testing.T) {
	n := newNetwork(t)
	a := n.issue(t, Hospital("hospital-a"), true)
	sc := n.serverConfig(t, nil)
	cc := n.clientConfig(t, a)
	cc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	resumed := false
	cc.VerifyConnection = wrapVerify(cc.VerifyConnection, func(cs tls.ConnectionState) { resumed = cs.DidResume })
	for i := range 2 {
		if serr, cerr := handshake(t, sc, cc); serr != nil || cerr != nil {
			t.Fatalf("handshake %d: %v %v", i, serr, cerr)
		}
	}
	if !resumed {
		t.Fatal("the second handshake did not resume")
	}
	if err := n.ca.RevokeCertificate(context.Background(), a.Leaf.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	serr, _ := handshake(t, sc, cc)
	if Code(serr) != CodeRevoked {
		t.Fatalf("resumed session after revocation: %v", serr)
	}
}

// TestRenewerKeepsCertificateOnFailure: a failed renewal keeps serving the
// current certificate and is reported.
func TestRenewerKeepsCertificateOnFailure(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()
	calls := 0
	r, err := NewRenewer(ctx, func(context.Context) (*tls.Certificate, error) {
		calls++
		if calls > 1 {
			return nil, errors.New("CA unreachable")
		}
		return n.coord, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.renew(ctx); err == nil {
		t.Fatal("renew reported no error")
	}
	if c, _ := r.GetCertificate(nil); c != n.coord {
		t.Fatal("failed renewal replaced the certificate")
	}
	if _, err := NewRenewer(ctx, func(context.Context) (*tls.Certificate, error) { return &tls.Certificate{}, nil }); Code(err) != CodeBadCert {
		t.Fatalf("empty certificate: %v", err)
	}
}
