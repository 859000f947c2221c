package fhirserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"phix/store"
	"phix/store/sqlite"
)

// env is a running server on loopback plus a client for it.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	base  string
	token string
	store store.Store
	logs  *syncBuffer
	// protected is true when the server seals what it stores (the default).
	protected bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func openSQLite(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newEnv(t testing.TB, st store.Store, mod ...func(*Config)) *env {
	t.Helper()
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := NewStaticTokens(tok)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := Config{Store: st, Auth: auth, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Protector: testProtector(t)}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &env{t: t, srv: hs, base: hs.URL + BasePath, token: tok, store: st, logs: logs, protected: cfg.Protector != nil}
}

// resp is a response with its decoded JSON body.
type resp struct {
	status int
	header http.Header
	body   []byte
	obj    map[string]any
}

func (e *env) do(method, path string, body any, hdr ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = e.base + path
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &resp{status: res.StatusCode, header: res.Header, body: data}
	if len(data) > 0 {
		_ = json.Unmarshal(data, &r.obj)
	}
	return r
}

// want fails unless the status is as expected.
func (r *resp) want(t testing.TB, status int) *resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %.600s", r.status, status, r.body)
	}
	return r
}

// errCode returns the urn:phix:error code of an OperationOutcome body.
func (r *resp) errCode() string {
	if r.obj == nil || r.obj["resourceType"] != "OperationOutcome" {
		return ""
	}
	issues, _ := r.obj["issue"].([]any)
	for _, i := range issues {
		im, _ := i.(map[string]any)
		det, _ := im["details"].(map[string]any)
		codings, _ := det["coding"].([]any)
		for _, c := range codings {
			cm, _ := c.(map[string]any)
			if cm["system"] == ErrorSystem {
				s, _ := cm["code"].(string)
				return s
			}
		}
	}
	return ""
}

func (r *resp) str(path ...string) string {
	var v any = r.obj
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func (r *resp) entries() []map[string]any {
	raw, _ := r.obj["entry"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		m, _ := e.(map[string]any)
		out = append(out, m)
	}
	return out
}

func (r *resp) total() int {
	f, ok := r.obj["total"].(float64)
	if !ok {
		return -1
	}
	return int(f)
}

func (r *resp) link(rel string) string {
	links, _ := r.obj["link"].([]any)
	for _, l := range links {
		m, _ := l.(map[string]any)
		if m["relation"] == rel {
			s, _ := m["url"].(string)
			return s
		}
	}
	return ""
}

func patient(family, given string) map[string]any {
	return map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": family, "given": []any{given}}},
		"gender":       "female",
		"birthDate":    "1970-01-01",
		"identifier":   []any{map[string]any{"system": "urn:test:mrn", "value": family + "-" + given}},
	}
}

func newReq(auth string) *http.Request {
	r := httptest.NewRequest("GET", "/fhir/r4/Patient", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}
