package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/pki"
)

// TestCoordinatorExampleConfig loads the documented example file.
func TestCoordinatorExampleConfig(t *testing.T) {
	c, err := loadCoordinatorConfig(filepath.Join("..", "..", "docs", "examples", "coordinator.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "coordinator-sh-1" || c.Listen != "127.0.0.1:8443" || c.AdminListen != "127.0.0.1:8444" ||
		c.TLS.CRL != "/etc/phix/pki/network.crl" || !strings.HasPrefix(c.Database, "postgres://") ||
		c.Blob.Backend != "fs" || c.Blob.Region != "CN-SH" || c.Blob.S3.AccessKeyEnv != "PHIX_S3_ACCESS_KEY" ||
		c.Blob.S3.PartSize != 8<<20 || c.Policy.ConsentMaxAge != 30*24*time.Hour || c.Policy.MaxRetention != 90*24*time.Hour ||
		len(c.Policy.AllowedRegions) != 1 || c.Policy.AllowedRegions[0] != "CN-*" ||
		c.Retention.SweepInterval != 5*time.Minute || c.CapabilityTTL != 15*time.Minute || c.Limits.MaxFileSize != 64<<30 {
		t.Fatalf("example config: %+v", c)
	}
	if err := c.resolve(); err != nil {
		t.Fatalf("example config does not resolve: %v", err)
	}
	if c.NATS.StoreDir != "/var/lib/phix/coordinator/nats" || c.Audit.Key != "/var/lib/phix/coordinator/audit.key" {
		t.Fatalf("derived defaults: %+v", c)
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimalConfig = `data_dir: /tmp/phix
tls: {ca: ca.crt, cert: c.crt, key: c.key, crl: n.crl}
`

func TestCoordinatorConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, text, want string
	}{
		{"unknown key", minimalConfig + "listen: 127.0.0.1:1\nlisten_adress: x\n", "line 4: field listen_adress not found"},
		{"unknown nested key", minimalConfig + "blob:\n  backend: fs\n  bucket: x\n", "line 5: field bucket not found"},
		{"bad duration", minimalConfig + "capability_ttl: soon\n", "line 3"},
		{"bad type", minimalConfig + "limits: {max_file_size: big}\n", "line 3"},
		{"two documents", minimalConfig + "---\nid: x\n", "one YAML document"},
		{"bad backend", minimalConfig + "blob: {backend: ftp}\n", "blob.backend"},
		{"s3 without bucket", minimalConfig + "blob: {backend: s3, s3: {endpoint: http://127.0.0.1:1}}\n", "blob.s3.bucket"},
		{"s3 env unset", minimalConfig + "blob: {backend: s3, s3: {endpoint: http://127.0.0.1:1, bucket: b, access_key_env: PHIX_TEST_UNSET_AK, secret_key_env: PHIX_TEST_UNSET_SK}}\n", "PHIX_TEST_UNSET_AK"},
		{"bad log level", minimalConfig + "log_level: loud\n", "log_level"},
		{"zero ttl", minimalConfig + "capability_ttl: 0s\n", "capability_ttl"},
		{"no tls", "data_dir: /tmp/x\n", "tls.ca"},
		{"no data dir", "tls: {ca: a, cert: b, key: c, crl: d}\n", "data_dir"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadCoordinatorConfig(writeConfig(t, c.text))
			if err == nil {
				err = cfg.resolve()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestCoordinatorConfigFlagsOverride checks that command-line flags win
// over the file and that file values are the flags' defaults.
func TestCoordinatorConfigFlagsOverride(t *testing.T) {
	p := writeConfig(t, minimalConfig+"listen: 127.0.0.1:9000\nlog_level: warn\nnats: {url: nats://127.0.0.1:4222}\ncapability_ttl: 5m\n")
	args := []string{"--config", p, "--listen", "127.0.0.1:9100", "--allowed-regions", "CN-BJ,CN-SH", "--capability-ttl=7m"}
	got, err := configFlag(args)
	if err != nil || got != p {
		t.Fatalf("configFlag: %q %v", got, err)
	}
	if g, _ := configFlag([]string{"-config=x.yaml"}); g != "x.yaml" {
		t.Fatalf("configFlag with =: %q", g)
	}
	if _, err := configFlag([]string{"--config"}); err == nil {
		t.Fatal("--config without a value accepted")
	}
	cfg, err := loadCoordinatorConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("config", "", "")
	cfg.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := cfg.resolve(); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9100" || cfg.LogLevel != "warn" || cfg.NATS.URL != "nats://127.0.0.1:4222" || cfg.NATS.StoreDir != "" ||
		cfg.CapabilityTTL != 7*time.Minute || strings.Join(cfg.Policy.AllowedRegions, ",") != "CN-BJ,CN-SH" || cfg.Database != "/tmp/phix/coordinator.db" {
		t.Fatalf("merged config: %+v", cfg)
	}
	// serve reports a file error before doing anything else.
	if err := runCoordinator(t.Context(), []string{"serve", "--config", writeConfig(t, "nope: 1\n")}); err == nil || !strings.Contains(err.Error(), "line 1: field nope not found") {
		t.Fatalf("serve with a bad file: %v", err)
	}
}

func FuzzCoordinatorConfig(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", "coordinator.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(minimalConfig))
	f.Add([]byte("limits: {max_file_size: -1}\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaultCoordinatorConfig()
		if err := decodeCoordinatorConfig(data, &c); err != nil {
			return
		}
		_ = c.resolve()
	})
}

// TestCoordinatorServeWithConfig runs `phix coordinator serve --config`
// with a pki-issued certificate and a YAML file, a flag overriding the
// file's listen address, and checks health, readiness and metrics on the
// admin listener.
func TestCoordinatorServeWithConfig(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	const pass = "operator passphrase"
	if _, err := pkiRun(t, pass, "init", "--dir", ca); err != nil {
		t.Fatal(err)
	}
	coord := filepath.Join(dir, "coordinator")
	if _, err := pkiRun(t, pass, "issue", "--dir", ca, "--coordinator", "cn-east", "--ip", "127.0.0.1", "--out", coord); err != nil {
		t.Fatal(err)
	}
	crl := filepath.Join(dir, "network.crl")
	if _, err := pkiRun(t, pass, "crl", "--dir", ca, "--out", crl); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "admin.token")
	os.WriteFile(tok, []byte("admin-token-for-test\n"), 0o600)
	adminPort := freePort(t)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:1
admin_listen: 127.0.0.1:%d
admin_token_file: %s
data_dir: %s
log_level: warn
tls: {ca: %s, cert: %s, key: %s, crl: %s}
blob: {backend: fs, region: CN-SH}
policy: {allowed_regions: ["CN-*"]}
capability_ttl: 5m
`, adminPort, tok, filepath.Join(dir, "data"), filepath.Join(ca, pki.CACertFile), coord+".crt", coord+".key", crl)
	file := filepath.Join(dir, "coordinator.yaml")
	os.WriteFile(file, []byte(cfg), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- coordinatorServe(ctx, []string{"--config", file, "--listen", "127.0.0.1:0"}, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	if strings.HasSuffix(addr, ":1") {
		t.Fatalf("--listen did not override the file: %s", addr)
	}
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	waitUp(t, admin+"/healthz")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		res, err := http.Get(admin + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || (p == "/metrics" && !strings.Contains(string(b), "phix_transfer_latency_seconds")) {
			t.Fatalf("%s: %d %s", p, res.StatusCode, b)
		}
	}
	req, _ := http.NewRequest("GET", admin+"/v1/admin/hospitals", nil)
	req.Header.Set("Authorization", "Bearer admin-token-for-test")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("admin API with the token file's token: %d", res.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
}
