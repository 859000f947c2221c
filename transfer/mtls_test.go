package transfer_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"phix/pki"
	"phix/transfer"
)

// tlsNet is a network CA with a coordinator certificate and hospital
// certificates, as `phix pki` issues them.
type tlsNet struct {
	ca    *pki.CA
	coord *tls.Certificate
	certs map[string]*pki.Issued
	keys  map[string]crypto.Signer
	// spare is a second pinned certificate of hospital-b (for revocation tests).
	spare    *pki.Issued
	spareKey crypto.Signer
}

func newTLSNet(t testing.TB) *tlsNet {
	t.Helper()
	st, err := pki.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca, _, err := pki.NewCA(pki.CAConfig{Name: "phix test network"}, pki.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	n := &tlsNet{ca: ca, certs: map[string]*pki.Issued{}, keys: map[string]crypto.Signer{}}
	is, key := n.issue(t, pki.Coordinator("cn-east"), nil)
	n.coord = is.TLSCertificate(key)
	return n
}

// issue makes a certificate for p, with key if given (else a new one).
func (n *tlsNet) issue(t testing.TB, p pki.Principal, key crypto.Signer) (*pki.Issued, crypto.Signer) {
	t.Helper()
	ctx := context.Background()
	req := pki.IssueRequest{Principal: p, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	if key == nil {
		is, k, err := n.ca.IssueWithNewKey(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return is, k
	}
	req.PublicKey = key.Public()
	is, err := n.ca.Issue(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return is, key
}

// client is a hospital client that verifies the coordinator.
func (n *tlsNet) client(t testing.TB, cert *tls.Certificate, sni string) *http.Client {
	t.Helper()
	pins := pki.NewMemoryPins()
	if err := pins.Add(pki.Coordinator("cn-east"), mustPin(t, n.coord)); err != nil {
		t.Fatal(err)
	}
	v, err := pki.NewVerifier(pki.VerifierConfig{CA: n.ca.Certificate(), Pins: pins, CRL: n.ca.CRLSource()})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ClientTLSConfig(pki.ClientConfig{Verifier: v, Server: pki.Coordinator("cn-east"), ServerName: sni,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func mustPin(t testing.TB, c *tls.Certificate) string {
	t.Helper()
	pin, err := pki.PublicKeyPin(c.PrivateKey.(crypto.Signer).Public())
	if err != nil {
		t.Fatal(err)
	}
	return pin
}

// newTLSEnv is newEnv behind pki.ServerTLSConfig with the registry's pins:
// every hospital request is a real mutual-TLS client.
func newTLSEnv(t testing.TB, n *tlsNet, rejects chan<- string) *env {
	return newEnvWith(t, "", envSetup{
		pre: func(e *env) {
			for _, p := range []*party{e.a, e.b, e.c} {
				is, key := n.issue(t, pki.Hospital(p.ID), nil)
				n.certs[p.ID], n.keys[p.ID] = is, key
				p.H.Pins = []string{is.Pin}
			}
			n.spare, n.spareKey = n.issue(t, pki.Hospital(e.b.ID), nil)
			e.b.H.Pins = append(e.b.H.Pins, n.spare.Pin)
		},
		serve: func(h http.Handler) *httptest.Server {
			// The store is reachable only through the server here, so the pin
			// source reads the registry over the same Store the handler uses.
			ts := httptest.NewUnstartedServer(h)
			ts.TLS = &tls.Config{}                          // replaced in after, once the store exists
			ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
			ts.Config.HTTP2 = transfer.HTTP2Config()
			// Serve h2 as the coordinator's ServeTLS does (httptest would
			// otherwise serve http/1.1 only); NextProtos is set in after.
			ts.EnableHTTP2 = true
			return ts
		},
		after: func(e *env) {
			v, err := pki.NewVerifier(pki.VerifierConfig{CA: n.ca.Certificate(), Pins: transfer.NewPinStore(e.store), CRL: n.ca.CRLSource()})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := pki.ServerTLSConfig(pki.ServerConfig{Verifier: v, ClaimedPeer: transfer.ClaimedPeerFromSNI,
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return n.coord, nil },
				OnReject: func(_ tls.ConnectionState, err error) {
					if rejects != nil {
						select {
						case rejects <- pki.Code(err):
						default:
						}
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{*n.coord} // httptest would otherwise add its own
			cfg.NextProtos = []string{"h2", "http/1.1"}    // as http.Server.ServeTLS offers
			e.ts.TLS = cfg
			e.ts.StartTLS()
			e.clients = map[string]*http.Client{}
			for _, p := range []*party{e.a, e.b, e.c} {
				p.Cert = "" // identity comes from the certificate only
				e.clients[p.ID] = n.client(t, n.certs[p.ID].TLSCertificate(n.keys[p.ID]), "")
			}
		},
	}, func(c *transfer.Config) { c.Identifier = transfer.TLSIdentifier{} })
}

// TestFlowMutualTLS runs the whole flow with pki-issued certificates over
// real TLS 1.3 clients: no identity headers exist on this path.
func TestFlowMutualTLS(t *testing.T) {
	n := newTLSNet(t)
	e := newTLSEnv(t, n, nil)
	if !strings.HasPrefix(e.ts.URL, "https://127.0.0.1:") {
		t.Fatalf("server URL %s", e.ts.URL)
	}
	runFlow(t, e)
}

// TestHandshakeRefusalsAtCoordinator: each bad client certificate is refused
// in the handshake with its own pki code, before any handler runs.
func TestHandshakeRefusalsAtCoordinator(t *testing.T) {
	n := newTLSNet(t)
	rejects := make(chan string, 8)
	e := newTLSEnv(t, n, rejects)
	ctx := context.Background()

	unpinnedIs, unpinnedKey := n.issue(t, pki.Hospital("hospital-a"), nil) // a valid CA certificate, not in the registry
	revokedIs, revokedKey := n.spare, n.spareKey                           // pinned for B: only the CRL refuses it
	serial, err := pki.ParseSerial(revokedIs.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.ca.RevokeCertificate(ctx, serial, pki.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	// B's key in a certificate naming A: the CA signed it, but A's pin is not B's key.
	bAsA, _ := n.issue(t, pki.Hospital("hospital-a"), n.keys["hospital-b"])

	cases := []struct {
		name string
		cert *tls.Certificate
		sni  string
		code string
	}{
		{"unpinned", unpinnedIs.TLSCertificate(unpinnedKey), "", pki.CodeUnpinned},
		{"revoked", revokedIs.TLSCertificate(revokedKey), "", pki.CodeRevoked},
		{"B claims A by SNI", n.certs["hospital-b"].TLSCertificate(n.keys["hospital-b"]), "hospital-a" + transfer.PeerSNISuffix, pki.CodeWrongHospital},
		{"B's key in a certificate for A", bAsA.TLSCertificate(n.keys["hospital-b"]), "", pki.CodeUnpinned},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := n.client(t, tc.cert, tc.sni)
			res, err := c.Get(e.ts.URL + "/v1/inbox")
			if err == nil {
				res.Body.Close()
				t.Fatalf("request served with status %d", res.StatusCode)
			}
			var got string
			select {
			case got = <-rejects:
			case <-time.After(10 * time.Second):
				t.Fatal("no rejection reported")
			}
			if got != tc.code {
				t.Fatalf("refused with %q, want %q", got, tc.code)
			}
		})
	}
	// The right certificate still works, and with the matching SNI claim.
	c := n.client(t, n.certs["hospital-a"].TLSCertificate(n.keys["hospital-a"]), "hospital-a"+transfer.PeerSNISuffix)
	res, err := c.Get(e.ts.URL + "/v1/inbox")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("pinned client: %d", res.StatusCode)
	}
}
