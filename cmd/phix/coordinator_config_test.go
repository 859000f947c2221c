package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
