package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/auth/oidc"
	"phix/gateway"
	"phix/pki"
)

// TestNodeExampleConfig: the documented example parses with unknown keys
// refused, and a misspelt key is an error.
func TestNodeExampleConfig(t *testing.T) {
	cfg, err := gateway.LoadNodeConfig(filepath.Join("..", "..", "docs", "examples", "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hospital != "hospital-a" || cfg.Gateway.Policy == nil || cfg.Gateway.Policy.Purposes["HRESCH"].Deidentify != "safe-harbor" ||
		cfg.Gateway.Retention != 720*time.Hour || !*cfg.Gateway.Receive || !filepath.IsAbs(cfg.Gateway.CAFile) ||
		!filepath.IsAbs(cfg.Auth.DB) || !filepath.IsAbs(cfg.Auth.Policy) || !*cfg.Auth.PeerConsents || !*cfg.Auth.LocalClients ||
		len(cfg.Auth.IdPs) != 1 || cfg.Auth.IdPs[0].Audience[0] != "phix-hospital-a" {
		t.Fatalf("parsed %+v", cfg)
	}
	b, _ := os.ReadFile(filepath.Join("..", "..", "docs", "examples", "node.yaml"))
	if _, err := gateway.ParseNodeConfig(bytes.Replace(b, []byte("chunk_size:"), []byte("chunksize:"), 1), "."); err == nil {
		t.Fatal("an unknown key was accepted")
	}
	if _, err := gateway.ParseNodeConfig(bytes.Replace(b, []byte("peer_consents:"), []byte("peer_consent:"), 1), "."); err == nil {
		t.Fatal("an unknown auth key was accepted")
	}
	pg, err := gateway.ParseNodeConfig(bytes.Replace(b, []byte("db: ../../node-a/auth.db"), []byte("db: postgres://postgres@127.0.0.1/test"), 1), ".")
	if err != nil || pg.Auth.DB != "postgres://postgres@127.0.0.1/test" {
		t.Fatalf("a PostgreSQL auth store: %v", err)
	}
	bad := bytes.Replace(b, []byte("deidentify: safe-harbor"), []byte("deidentify: \"\""), 1)
	if _, err := gateway.ParseNodeConfig(bad, "."); err == nil || !strings.Contains(err.Error(), "must de-identify") {
		t.Fatalf("identified research accepted: %v", err)
	}
}

// TestNodeRuns starts `phix node` from a configuration: the FHIR server and
// the gateway API answer, and --registry-entry prints the public entry.
func TestNodeRuns(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ca, err := pki.InitDir(filepath.Join(dir, "pki"), pki.CAConfig{Name: "test network"}, nil, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	is, key, err := ca.IssueWithNewKey(ctx, pki.IssueRequest{Principal: pki.Hospital("hospital-a"), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pki.MarshalPrivateKey(key, nil)
	crl, err := ca.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"pki/a.crt": is.CertPEM, "pki/a.key": kb, "pki/ca.crl": pki.EncodeCRLPEM(crl), "registry.json": []byte("[]")}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := `hospital: hospital-a
region: CN-SH
data: node
fhir: {listen: "127.0.0.1:0"}
gateway:
  listen: "127.0.0.1:0"
  coordinator: https://127.0.0.1:1
  coordinator_id: dev
  coordinator_pin: ` + is.Pin + `
  ca_file: pki/ca.crt
  cert_file: pki/a.crt
  key_file: pki/a.key
  crl_file: pki/ca.crl
  peers_file: registry.json
  receive: false
`
	cfgPath := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := nodeMain(ctx, []string{"--config", cfgPath, "--registry-entry"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	var entry map[string]any
	if err := json.Unmarshal(out.Bytes(), &entry); err != nil || entry["id"] != "hospital-a" || entry["signing_key"] == "" || entry["wrap_key"] == "" {
		t.Fatalf("registry entry %q: %v", out.String(), err)
	}
	rctx, cancel := context.WithCancel(ctx)
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() { done <- nodeMain(rctx, []string{"--config", cfgPath}, &out, ready) }()
	var urls [2]string
	select {
	case urls = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "node", "clinician.token"))
	for _, u := range []string{urls[0] + "/metadata", urls[1] + "/transfers"} {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", u, err, res)
		}
		res.Body.Close()
	}
	res, err := http.Get(urls[1] + "/transfers")
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("gateway API without token: %v %v", err, res)
	}
	res.Body.Close()
	// The node runs its own authorization server and enforces: the token
	// file holds a token of that server; the auditor's token reads the
	// audit log but no patient; the SMART configuration is under the FHIR
	// base; break-glass answers (and refuses the anonymous).
	root := strings.TrimSuffix(urls[0], "/fhir/r4")
	if p, _ := oidc.Parse(strings.TrimSpace(string(tok))); p == nil || p.Claims.Issuer != root+"/auth" {
		t.Fatal("the clinician token is not one of the node's authorization server")
	}
	aud, _ := os.ReadFile(filepath.Join(dir, "node", "auditor.token"))
	for _, c := range []struct {
		method, url, token string
		want               int
	}{
		{"GET", urls[0] + "/Patient", string(tok), 200},
		{"GET", urls[0] + "/Patient", string(aud), 403},
		{"GET", urls[0] + "/AuditEvent", string(aud), 200},
		{"GET", urls[0] + "/.well-known/smart-configuration", "", 200},
		{"GET", root + "/auth/.well-known/openid-configuration", "", 200},
		{"POST", root + "/break-glass/", "", 401},
		{"GET", urls[1] + "/transfers", string(aud), 401},
	} {
		req, _ := http.NewRequest(c.method, c.url, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(c.token))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != c.want {
			t.Fatalf("%s %s: %v %v, want %d", c.method, c.url, err, res, c.want)
		}
		res.Body.Close()
	}
	// The gateway is a registered backend-services client, visible to
	// `phix auth clients list` on the node's auth store.
	var list bytes.Buffer
	if err := authMain(ctx, []string{"--db", filepath.Join(dir, "node", "auth.db"), "clients", "list"}, strings.NewReader(""), &list); err != nil ||
		!strings.Contains(list.String(), "hospital-a-gateway") {
		t.Fatalf("clients list: %v\n%s", err, list.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("node stopped with %v", err)
	}
}
