package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHTTPMutualTLS(t *testing.T) {
	n := newNetwork(t)
	a := n.issue(t, Hospital("hospital-a"), true)
	b := n.issue(t, Hospital("hospital-b"), true)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		id, ok := PeerHospital(r)
		if !ok {
			http.Error(w, "no identity", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, id)
	})
	// A hospital acting for another is refused by the handler.
	mux.HandleFunc("POST /hospitals/{id}/transfers", func(w http.ResponseWriter, r *http.Request) {
		if err := RequireHospital(r, r.PathValue("id")); err != nil {
			http.Error(w, Code(err), http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", n.serverConfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "https://" + ln.Addr().String()

	client := func(cert *tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: n.clientConfig(t, cert)}}
	}
	ca, cb := client(a), client(b)
	resp, err := ca.Get(base + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hospital-a" {
		t.Fatalf("whoami = %d %q", resp.StatusCode, body)
	}
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("TLS version %x", resp.TLS.Version)
	}
	for _, tc := range []struct {
		c    *http.Client
		path string
		want int
		body string
	}{
		{ca, "/hospitals/hospital-a/transfers", http.StatusCreated, ""},
		{cb, "/hospitals/hospital-a/transfers", http.StatusForbidden, CodeWrongHospital},
	} {
		resp, err := tc.c.Post(base+tc.path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || !strings.Contains(string(body), tc.body) {
			t.Errorf("POST %s = %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.want, tc.body)
		}
	}
}

// TestHandshakeRefusals: every bad client fails the handshake, each with its own code.
func TestHandshakeRefusals(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()

	other, _ := newOtherCA(t)
	foreign, fkey, err := other.IssueWithNewKey(ctx, IssueRequest{Principal: Hospital("hospital-a")})
	if err != nil {
		t.Fatal(err)
	}
	n.pins.Add(Hospital("hospital-a"), foreign.Pin) // even pinned, a foreign chain is refused

	self := selfSigned(t, Hospital("hospital-a"))
	n.pins.Add(Hospital("hospital-a"), SPKIHash(self.Leaf))

	revoked := n.issue(t, Hospital("hospital-a"), true)
	if err := n.ca.RevokeCertificate(ctx, revoked.Leaf.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}

	// Issued by the same CA two days ago for one hour.
	pastCA, err := LoadCA(n.ca.Certificate(), n.caKey, Options{Store: n.ca.Store(), Now: func() time.Time { return time.Now().Add(-48 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expIs, expKey, err := pastCA.IssueWithNewKey(ctx, IssueRequest{Principal: Hospital("hospital-a"), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n.pins.Add(Hospital("hospital-a"), expIs.Pin)

	hospB := n.issue(t, Hospital("hospital-b"), true)
	coord2 := n.issue(t, Coordinator("region-2"), true)

	// Claimed identity from SNI, as a registry look-up would do it.
	claimBySNI := func(sc *ServerConfig) {
		sc.ClaimedPeer = func(cs tls.ConnectionState) (Principal, bool) {
			id, ok := strings.CutSuffix(cs.ServerName, ".peers.phix")
			return Hospital(id), ok
		}
	}

	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		mod  func(*ServerConfig)
		sni  string
		code string
	}{
		{"self-signed", self, nil, "", CodeUntrusted},
		{"other CA", foreign.TLSCertificate(fkey), nil, "", CodeUntrusted},
		{"unpinned", n.issue(t, Hospital("hospital-a"), false), nil, "", CodeUnpinned},
		{"revoked", revoked, nil, "", CodeRevoked},
		{"expired", expIs.TLSCertificate(expKey), nil, "", CodeExpired},
		{"another hospital's cert", hospB, claimBySNI, "hospital-a.peers.phix", CodeWrongHospital},
		{"coordinator where hospitals are expected", coord2, nil, "", CodeWrongHospital},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rejected string
			mod := func(sc *ServerConfig) {
				sc.OnReject = func(_ tls.ConnectionState, err error) { rejected = Code(err) }
				if tc.mod != nil {
					tc.mod(sc)
				}
			}
			cc := n.clientConfig(t, tc.cert)
			cc.ServerName = tc.sni
			serr, cerr := handshake(t, n.serverConfig(t, mod), cc)
			if Code(serr) != tc.code || rejected != tc.code {
				t.Fatalf("server error %v (OnReject %q), want %s", serr, rejected, tc.code)
			}
			if cerr == nil {
				t.Fatal("client saw no failure")
			}
			if strings.Contains(serr.Error(), "PRIVATE") {
				t.Fatal("error mentions key material")
			}
		})
	}

	t.Run("good, with the claimed identity", func(t *testing.T) {
		a := n.issue(t, Hospital("hospital-a"), true)
		cc := n.clientConfig(t, a)
		cc.ServerName = "hospital-a.peers.phix"
		if serr, cerr := handshake(t, n.serverConfig(t, claimBySNI), cc); serr != nil || cerr != nil {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
	})
	t.Run("TLS 1.2 refused", func(t *testing.T) {
		cc := n.clientConfig(t, n.issue(t, Hospital("hospital-a"), true))
		cc.MinVersion, cc.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		serr, cerr := handshake(t, n.serverConfig(t, nil), cc)
		if serr == nil || cerr == nil || !strings.Contains(serr.Error(), "unsupported versions") {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		cc := n.clientConfig(t, n.coord)
		cc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
		if serr, _ := handshake(t, n.serverConfig(t, nil), cc); serr == nil {
			t.Fatal("server accepted a client without a certificate")
		}
	})
}

// TestClientRefusesServer: a gateway checks the coordinator the same way.
func TestClientRefusesServer(t *testing.T) {
	n := newNetwork(t)
	a := n.issue(t, Hospital("hospital-a"), true)
	b := n.issue(t, Hospital("hospital-b"), true)
	for _, tc := range []struct {
		name   string
		server *tls.Certificate
		code   string
	}{
		{"a hospital posing as the coordinator", b, CodeWrongHospital},
		{"self-signed coordinator", selfSigned(t, Coordinator("region-1")), CodeUntrusted},
		{"unpinned coordinator", n.issue(t, Coordinator("region-1"), false), CodeUnpinned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := n.serverConfig(t, func(sc *ServerConfig) { sc.GetCertificate = staticCert(tc.server) })
			_, cerr := handshake(t, sc, n.clientConfig(t, a))
			if Code(cerr) != tc.code {
				t.Fatalf("client error %v, want %s", cerr, tc.code)
			}
		})
	}
}

func TestPinRollover(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()
	oldCert := n.issue(t, Hospital("hospital-a"), true)
	// Rollover to a new key: the renewal returns the new pin, the registry adds it.
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	is, err := n.ca.Renew(ctx, oldCert.Leaf, newKey.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !is.PinChanged || is.Pin == SPKIHash(oldCert.Leaf) {
		t.Fatal("new key kept the old pin")
	}
	if serr, _ := handshake(t, n.serverConfig(t, nil), n.clientConfig(t, is.TLSCertificate(newKey))); Code(serr) != CodeUnpinned {
		t.Fatalf("new key before the registry learnt it: %v", serr)
	}
	n.pins.Add(Hospital("hospital-a"), is.Pin)
	for name, c := range map[string]*tls.Certificate{"old": oldCert, "new": is.TLSCertificate(newKey)} {
		if serr, cerr := handshake(t, n.serverConfig(t, nil), n.clientConfig(t, c)); serr != nil || cerr != nil {
			t.Fatalf("%s key during rollover: %v %v", name, serr, cerr)
		}
	}
	n.pins.Remove(Hospital("hospital-a"), SPKIHash(oldCert.Leaf))
	if serr, _ := handshake(t, n.serverConfig(t, nil), n.clientConfig(t, oldCert)); Code(serr) != CodeUnpinned {
		t.Fatalf("old key after rollover: %v", serr)
	}
}

func TestCRLFreshness(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()
	a := n.issue(t, Hospital("hospital-a"), true)
	staleCA, _ := LoadCA(n.ca.Certificate(), n.caKey, Options{Store: n.ca.Store(), CRLValidity: time.Hour,
		Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	stale, err := staleCA.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newOtherCA(t)
	foreign, _ := other.CRL(ctx)
	fresh, _ := n.ca.CRL(ctx)
	for _, tc := range []struct {
		name string
		src  CRLSource
		code string
	}{
		{"fresh", func(context.Context) ([]byte, error) { return fresh, nil }, ""},
		{"fresh PEM", func(context.Context) ([]byte, error) { return EncodeCRLPEM(fresh), nil }, ""},
		{"stale", func(context.Context) ([]byte, error) { return stale, nil }, CodeCRLStale},
		{"another CA's", func(context.Context) ([]byte, error) { return foreign, nil }, CodeCRLInvalid},
		{"garbage", func(context.Context) ([]byte, error) { return []byte("nope"), nil }, CodeCRLInvalid},
		{"unavailable", func(context.Context) ([]byte, error) { return nil, errors.New("down") }, CodeCRLInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(VerifierConfig{CA: n.ca.Certificate(), Pins: n.pins, CRL: tc.src})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(ctx, []*x509.Certificate{a.Leaf}, x509.ExtKeyUsageClientAuth, nil)
			if Code(err) != tc.code {
				t.Fatalf("got %v, want %q", err, tc.code)
			}
		})
	}
}

func newOtherCA(t testing.TB) (*CA, error) {
	t.Helper()
	st, _ := NewDirStore(t.TempDir())
	ca, _, err := NewCA(CAConfig{Name: "test network CA"}, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return ca, nil
}
