package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"phix/audit"
	"phix/blob"
	"phix/blob/fsblob"
	"phix/internal/testenv"
	"phix/queue/natsq"
	"phix/suite"
	"phix/transfer"
	"phix/transfer/transfersql"
)

// headerIdentity is the test stand-in for mutual TLS: the hospital and
// certificate fingerprint come from headers the test sets.
type headerIdentity struct{}

func (headerIdentity) Identify(r *http.Request) (string, string, error) {
	id := r.Header.Get("X-Test-Hospital")
	if id == "" {
		return "", "", &transfer.Error{Code: transfer.CodeUnauthenticated, Status: 401, Title: "Unauthenticated"}
	}
	return id, r.Header.Get("X-Test-Cert"), nil
}

// memAuditor records events in memory and validates them as audit.Log would.
type memAuditor struct {
	mu     sync.Mutex
	events []audit.Event
}

func (m *memAuditor) Append(_ context.Context, ev audit.Event) (int64, error) {
	if err := ev.Validate(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, ev)
	return int64(len(m.events) - 1), nil
}

func (m *memAuditor) all() []audit.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Event(nil), m.events...)
}

type party struct {
	ID   string
	Cert string
	Key  suite.SigningKey
	H    transfer.Hospital
}

type env struct {
	t     testing.TB
	srv   *transfer.Server
	ts    *httptest.Server
	store transfer.Store
	blobs blob.Store
	audit *memAuditor
	a, b  *party
	c     *party // a US hospital
	now   time.Time
	// base, when set, replaces ts.URL for relative paths (a coordinator in
	// a child process).
	base string
	// adminURL serves the admin API (the same server as ts unless ts is mutual TLS).
	adminURL string
	// clients, when set, are each hospital's mutual-TLS client; requests then
	// carry no identity headers.
	clients map[string]*http.Client
}

// envSetup customises newEnvWith: pre runs on the parties before they are
// registered, serve starts the hospital-facing server.
type envSetup struct {
	pre   func(e *env)
	serve func(h http.Handler) *httptest.Server
	after func(e *env)
	// front, if set, returns what the hospitals reach instead of e.srv
	// (e.g. a proxy over several replicas built from cfg).
	front func(e *env, cfg transfer.Config) http.Handler
}

func newParty(t testing.TB, id, region string) *party {
	s, _ := suite.Lookup(suite.Intl)
	k, err := s.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	rk, err := s.GenerateRecipientKey()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("cert-" + id))
	return &party{ID: id, Cert: hex.EncodeToString(sum[:]), Key: k, H: transfer.Hospital{
		ID: id, NameZH: "医院" + id, NameEN: "Hospital " + id, Region: region,
		Networks: []string{"127.0.0.0/8", "::1/128"}, Suite: "intl",
		SigningKey: base64.StdEncoding.EncodeToString(k.Public().Bytes()),
		WrapKey:    base64.StdEncoding.EncodeToString(rk.Public().Bytes()),
		Pins:       []string{"sha256/" + base64.StdEncoding.EncodeToString(sum[:])},
	}}
}

var keyCache = struct {
	sync.Mutex
	m map[string]*party
}{m: map[string]*party{}}

// cachedParty reuses ML-DSA keys across tests (generation is slow).
func cachedParty(t testing.TB, id, region string) *party {
	keyCache.Lock()
	defer keyCache.Unlock()
	if p, ok := keyCache.m[id]; ok {
		cp := *p
		cp.H.Pins = append([]string(nil), p.H.Pins...)
		return &cp
	}
	p := newParty(t, id, region)
	keyCache.m[id] = p
	cp := *p
	return &cp
}

type envOpt func(*transfer.Config)

func newEnv(t testing.TB, storeURL string, opts ...envOpt) *env {
	t.Helper()
	return newEnvWith(t, storeURL, envSetup{}, opts...)
}

func newEnvWith(t testing.TB, storeURL string, setup envSetup, opts ...envOpt) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if storeURL == "" {
		storeURL = filepath.Join(dir, "meta.db")
	}
	st, err := transfersql.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobs, err := fsblob.New(filepath.Join(dir, "blobs"), "CN-SH")
	if err != nil {
		t.Fatal(err)
	}
	q, err := natsq.Open(ctx, natsq.Config{StoreDir: filepath.Join(dir, "nats"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	e := &env{t: t, store: st, blobs: blobs, audit: &memAuditor{}, now: time.Now()}
	cfg := transfer.Config{Store: st, Blobs: blobs, Queue: q, Auditor: e.audit, Identifier: headerIdentity{},
		AdminToken: "admin-secret-token", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&cfg)
	}
	e.blobs = cfg.Blobs
	e.srv, err = transfer.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var front http.Handler = e.srv
	if setup.front != nil {
		front = setup.front(e, cfg)
	}
	if setup.serve != nil {
		e.ts = setup.serve(front)
		admin := httptest.NewServer(e.srv)
		t.Cleanup(admin.Close)
		e.adminURL = admin.URL
	} else {
		e.ts = httptest.NewServer(front)
		e.adminURL = e.ts.URL
	}
	t.Cleanup(e.ts.Close)

	e.a = cachedParty(t, "hospital-a", "CN-BJ")
	e.b = cachedParty(t, "hospital-b", "CN-SH")
	e.c = cachedParty(t, "hospital-us", "US-CA")
	e.a.H.Partners = map[string]transfer.Partner{
		"hospital-b":  {DataClasses: []string{"clinical", "imaging"}, Purposes: []string{"TREAT", "ETREAT"}},
		"hospital-us": {DataClasses: []string{"clinical"}, Purposes: []string{"TREAT"}},
	}
	if setup.pre != nil {
		setup.pre(e)
	}
	for _, p := range []*party{e.a, e.b, e.c} {
		res := e.admin("POST", "/v1/admin/hospitals", p.H)
		if res.StatusCode != 201 {
			t.Fatalf("register %s: %d %s", p.ID, res.StatusCode, readAll(res))
		}
		res.Body.Close()
	}
	if setup.after != nil {
		setup.after(e)
	}
	return e
}

func readAll(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return string(b)
}

func (e *env) admin(method, path string, body any) *http.Response {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.adminURL+path, rd)
	req.Header.Set("Authorization", "Bearer admin-secret-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// do sends a request as party p.
func (e *env) do(p *party, method, url string, body io.Reader, hdr map[string]string) *http.Response {
	e.t.Helper()
	if strings.HasPrefix(url, "/") {
		if e.base != "" {
			url = e.base + url
		} else {
			url = e.ts.URL + url
		}
	}
	req, _ := http.NewRequest(method, url, body)
	client := http.DefaultClient
	if e.clients != nil {
		if p != nil {
			client = e.clients[p.ID]
		}
	} else if p != nil {
		req.Header.Set("X-Test-Hospital", p.ID)
		req.Header.Set("X-Test-Cert", p.Cert)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) doJSON(p *party, method, path string, body, out any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	res := e.do(p, method, path, rd, map[string]string{"Content-Type": "application/json"})
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var prob map[string]any
	if res.StatusCode >= 400 {
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			e.t.Fatalf("%s %s: status %d with content type %q", method, path, res.StatusCode, ct)
		}
		_ = json.Unmarshal(raw, &prob)
		return res.StatusCode, prob
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return res.StatusCode, nil
}

func sign(t testing.TB, k suite.SigningKey, msg []byte) string {
	sig, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// request builds a signed transfer request from sender to receiver.
func (e *env) request(sender, receiver *party, files map[string][]byte, mut ...func(*transfer.Request, *transfer.ConsentStatement)) transfer.Request {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sortStrings(names)
	specs := make([]transfer.FileSpec, 0, len(names))
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		specs = append(specs, transfer.FileSpec{Name: n, Size: int64(len(files[n])), HashAlg: "sha256", Hash: hex.EncodeToString(sum[:]), Sensitive: []string{"phi-encrypted"}})
	}
	return e.requestSpecs(sender, receiver, specs, mut...)
}

// requestSpecs builds a signed transfer request for files described by
// specs (large files that are generated, never held in memory).
func (e *env) requestSpecs(sender, receiver *party, specs []transfer.FileSpec, mut ...func(*transfer.Request, *transfer.ConsentStatement)) transfer.Request {
	now := time.Now()
	req := transfer.Request{Patient: "pseud-0001-abcd", ConsentID: "consent-1", Purpose: "TREAT", DataClass: "clinical",
		RetentionUntil: now.Add(30 * 24 * time.Hour).Truncate(time.Second), Receiver: receiver.ID, Files: specs}
	cs := transfer.ConsentStatement{ConsentID: req.ConsentID, Patient: req.Patient, Receiver: receiver.ID, Purposes: []string{"TREAT"},
		IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour)}
	for _, m := range mut {
		m(&req, &cs)
	}
	stmt, _ := json.Marshal(cs)
	req.ConsentProof = transfer.ConsentProof{Statement: base64.StdEncoding.EncodeToString(stmt), Signature: sign(e.t, sender.Key, stmt)}
	req.Signature = sign(e.t, sender.Key, transfer.CanonicalManifest(sender.ID, &req))
	return req
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (e *env) create(sender *party, req transfer.Request) transfer.TransferView {
	e.t.Helper()
	var v transfer.TransferView
	code, prob := e.doJSON(sender, "POST", "/v1/transfers", req, &v)
	if code != 201 {
		e.t.Fatalf("create: %d %v", code, prob)
	}
	return v
}

func b64sum(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

func (e *env) patch(p *party, url string, off int64, chunk []byte, checksum string) *http.Response {
	h := map[string]string{"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": itoa(off)}
	if checksum != "" {
		h["Upload-Checksum"] = checksum
	}
	return e.do(p, "PATCH", url, bytes.NewReader(chunk), h)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// upload sends data[start:] in chunks with checksums.
func (e *env) upload(p *party, url string, data []byte, start, chunk int) {
	e.t.Helper()
	for off := start; off < len(data) || off == 0; off += chunk {
		end := min(off+chunk, len(data))
		res := e.patch(p, url, int64(off), data[off:end], "sha256 "+b64sum(data[off:end]))
		if res.StatusCode != 204 {
			e.t.Fatalf("patch at %d: %d %s", off, res.StatusCode, readAll(res))
		}
		res.Body.Close()
		if len(data) == 0 {
			break
		}
	}
}

func testenvMissing(t *testing.T, why string) { testenv.Missing(t, "%s", why) }
