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
		cfg.Gateway.Retention != 720*time.Hour || !*cfg.Gateway.Receive || !filepath.IsAbs(cfg.Gateway.CAFile) {
		t.Fatalf("parsed %+v", cfg)
	}
	b, _ := os.ReadFile(filepath.Join("..", "..", "docs", "examples", "node.yaml"))
	if _, err := gateway.ParseNodeConfig(bytes.Replace(b, []byte("chunk_size:"), []byte("chunksize:"), 1), "."); err == nil {
		t.Fatal("an unknown key was accepted")
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
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("node stopped with %v", err)
	}
}
