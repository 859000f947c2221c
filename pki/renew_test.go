package pki

import (
	"context"
	"crypto/tls"
	"testing"
	"time"
)

// TestRenewerSwapsLive: a server whose certificate lives three seconds keeps
// serving through renewals, on the same tls.Config, and clients see the new
// certificate without a restart.
func TestRenewerSwapsLive(t *testing.T) {
	n := newNetwork(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	is0, key, err := n.ca.IssueWithNewKey(ctx, IssueRequest{Principal: Coordinator("region-1"), IPAddresses: loopback, Lifetime: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.pins.Add(Coordinator("region-1"), is0.Pin)
	first := true
	r, err := NewRenewer(ctx, func(ctx context.Context) (*tls.Certificate, error) {
		if first {
			first = false
			return is0.TLSCertificate(key), nil
		}
		cur := n.ca // renew for the same key: the pin does not change
		is, err := cur.Renew(ctx, is0.Certificate, nil, 3*time.Second)
		if err != nil {
			return nil, err
		}
		return is.TLSCertificate(key), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	renewed := make(chan error, 8)
	r.OnRenew = func(_ *tls.Certificate, err error) { renewed <- err }
	go r.Run(ctx)

	a := n.issue(t, Hospital("hospital-a"), true)
	sc := n.serverConfig(t, func(sc *ServerConfig) { sc.GetCertificate = r.GetCertificate })
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < 2 && time.Now().Before(deadline) {
		cc := n.clientConfig(t, a)
		var served string
		cc.VerifyConnection = wrapVerify(cc.VerifyConnection, func(cs tls.ConnectionState) { served = SerialString(cs.PeerCertificates[0].SerialNumber) })
		if serr, cerr := handshake(t, sc, cc); serr != nil || cerr != nil {
			t.Fatalf("handshake during renewal: %v %v", serr, cerr)
		}
		seen[served] = true
		select {
		case err := <-renewed:
			if err != nil {
				t.Fatalf("renewal failed: %v", err)
			}
		case <-time.After(200 * time.Millisecond):
		}
	}
	if len(seen) < 2 {
		t.Fatal("the served certificate never changed")
	}
	if r.Current().Leaf.NotAfter.Before(is0.Certificate.NotAfter) {
		t.Fatal("renewed certificate expires before the first")
	}
}

func wrapVerify(next func(tls.ConnectionState) error, see func(tls.ConnectionState)) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		see(cs)
		return next(cs)
	}
}

func TestRenewRules(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()
	c := n.issue(t, Hospital("hospital-a"), true)
	same, err := n.ca.Renew(ctx, c.Leaf, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if same.PinChanged || same.Pin != SPKIHash(c.Leaf) || same.Serial == SerialString(c.Leaf.SerialNumber) {
		t.Fatal("same-key renewal must keep the pin and change the serial")
	}
	if same.Certificate.URIs[0].String() != "urn:phix:hospital:hospital-a" || !same.Certificate.IPAddresses[0].Equal(loopback[0]) {
		t.Fatal("renewal lost names")
	}
	if err := n.ca.RevokeCertificate(ctx, same.Certificate.SerialNumber, ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ca.Renew(ctx, same.Certificate, nil, 0); Code(err) != CodeRevoked {
		t.Fatalf("renewing a revoked certificate: %v", err)
	}
	other, _ := newOtherCA(t)
	fis, _, _ := other.IssueWithNewKey(ctx, IssueRequest{Principal: Hospital("hospital-a")})
	if _, err := n.ca.Renew(ctx, fis.Certificate, nil, 0); Code(err) != CodeUntrusted {
		t.Fatalf("renewing a foreign certificate: %v", err)
	}
	if _, err := n.ca.Renew(ctx, c.Leaf, nil, 30*24*time.Hour); Code(err) != CodeBadRequest {
		t.Fatalf("lifetime over the cap: %v", err)
	}
	later, _ := LoadCA(n.ca.Certificate(), n.caKey, Options{Store: n.ca.Store(), Now: func() time.Time { return time.Now().Add(48 * time.Hour) }})
	if _, err := later.Renew(ctx, c.Leaf, nil, 0); Code(err) != CodeExpired {
		t.Fatalf("renewing after expiry: %v", err)
	}
}
