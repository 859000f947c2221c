package siem_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/audit/audittest"
	"phix/audit/siem"
)

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	caPEM                  []byte
	pool                   *x509.CertPool
	server, client         tls.Certificate
	serverPEM, serverKey   []byte
	clientPEM, clientKeyPE []byte
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "phix test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &pki{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c, certPEM, keyPEM
	}
	p.server, p.serverPEM, p.serverKey = issue(2, "localhost", x509.ExtKeyUsageServerAuth)
	p.client, p.clientPEM, p.clientKeyPE = issue(3, "hospital-a audit exporter", x509.ExtKeyUsageClientAuth)
	return p
}

func (p *pki) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// logWith returns a SQLite backend holding n events.
func logWith(t *testing.T, n int) audit.Backend {
	t.Helper()
	b, err := auditsqlite.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	appendN(t, b, n)
	return b
}

func appendN(t *testing.T, b audit.Backend, n int) {
	t.Helper()
	l := audittest.OpenLog(t, b, nil)
	p := audittest.Pseudonyms(t)
	for i := 0; i < n; i++ {
		if err := l.Record(audittest.SampleEvent(p, i, audit.ActionCreate)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

var indexRE = regexp.MustCompile(`"index":(\d+)`)

// indexes counts each index in the text.
func indexes(text string) map[int64]int {
	out := map[int64]int{}
	for _, m := range indexRE.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out[n]++
	}
	return out
}

func checkExactlyOnce(t *testing.T, got map[int64]int, n int) (dups int) {
	t.Helper()
	for i := int64(0); i < int64(n); i++ {
		switch c := got[i]; {
		case c == 0:
			t.Fatalf("event %d never arrived", i)
		case c > 1:
			dups += c - 1
		}
	}
	if len(got) != n {
		t.Fatalf("%d distinct events arrived, want %d", len(got), n)
	}
	return dups
}

func TestFileSinkExactlyOnce(t *testing.T) {
	ctx := context.Background()
	b := logWith(t, 120)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	fs, err := siem.OpenFile("file", path)
	if err != nil {
		t.Fatal(err)
	}
	ex := &siem.Exporter{Source: b, Sink: fs, Batch: 50}
	if n, err := ex.Step(ctx); err != nil || n != 50 {
		t.Fatalf("step: %d %v", n, err)
	}
	// Crash after the write but before the cursor moved: roll the cursor back.
	if err := b.SetCursor(ctx, "file", 9); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	// And a torn line at the end.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"action":"cre`)
	f.Close()
	fs, err = siem.OpenFile("file", path)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ex.Sink = fs
	for {
		n, err := ex.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	data, _ := os.ReadFile(path)
	if dups := checkExactlyOnce(t, indexes(string(data)), 120); dups != 0 {
		t.Fatalf("%d duplicates in the file sink", dups)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if _, err := audit.ParseEvent([]byte(line)); err != nil {
			t.Fatalf("line %d is not an event: %v", i, err)
		}
	}
}

// receiver is a minimal RFC 5425 receiver requiring client certificates.
type receiver struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
}

func newReceiver(t *testing.T, p *pki, addr string) *receiver {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	ln, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *receiver) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		lenStr, err := br.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
		if err != nil || n <= 0 || n > 1<<20 {
			return
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, string(msg))
		r.mu.Unlock()
	}
}

var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ phix-audit - [a-z-]+ \[phix@32473 seq="(\d+)"\] \{.*\}$`)

func TestSyslogTLS(t *testing.T) {
	ctx := context.Background()
	p := newPKI(t)
	b := logWith(t, 90)
	rcv := newReceiver(t, p, "127.0.0.1:0")
	addr := rcv.ln.Addr().String()
	sink := &siem.Syslog{Addr: addr, TLS: p.clientTLS(), Hostname: "hospital-a", Timeout: 5 * time.Second}
	ex := &siem.Exporter{Source: b, Sink: sink, Batch: 40}
	if n, err := ex.Step(ctx); err != nil || n != 40 {
		t.Fatalf("step: %d %v", n, err)
	}
	// SIEM down: delivery fails and the cursor stays.
	rcv.ln.Close()
	if _, err := ex.Step(ctx); err == nil {
		t.Fatal("delivery to a closed receiver succeeded")
	}
	if c, _ := b.Cursor(ctx, "syslog"); c != 39 {
		t.Fatalf("cursor moved to %d during the outage", c)
	}
	rcv2 := newReceiver(t, p, addr)
	defer rcv2.ln.Close()
	for {
		n, err := ex.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	all := append(append([]string{}, rcv.msgs...), rcv2.msgs...)
	got := map[int64]int{}
	for _, m := range all {
		sm := rfc5424.FindStringSubmatch(m)
		if sm == nil {
			t.Fatalf("not an RFC 5424 message: %.80q", m)
		}
		if pri, _ := strconv.Atoi(sm[1]); pri != 13*8+6 {
			t.Fatalf("PRI %d", pri)
		}
		seq, _ := strconv.ParseInt(sm[2], 10, 64)
		got[seq]++
		if idx := indexes(m); idx[seq] != 1 {
			t.Fatalf("seq %d does not match the event index", seq)
		}
	}
	if dups := checkExactlyOnce(t, got, 90); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}

	// Without a client certificate the receiver refuses the connection.
	noCert := &siem.Syslog{Addr: addr, TLS: &tls.Config{RootCAs: p.pool, ServerName: "localhost"}, Timeout: 5 * time.Second}
	if err := noCert.Deliver(ctx, []siem.Entry{{Index: 0, Time: time.Now(), Body: []byte(`{}`)}}); err == nil {
		t.Fatal("delivery without a client certificate succeeded")
	}
}

func TestFormatHeaderFields(t *testing.T) {
	msg := siem.FormatRFC5424(siem.Entry{Index: 7, Time: time.Unix(0, 0), Body: []byte(`{"action":"security-alert","outcome":"success"}`)}, "bad host name", "", "phix@32473")
	want := `<108>1 1970-01-01T00:00:00.000000Z badhostname - - security-alert [phix@32473 seq="7"] {"action":"security-alert","outcome":"success"}`
	if string(msg) != want {
		t.Fatalf("got  %s\nwant %s", msg, want)
	}
	_ = fmt.Sprint
}
