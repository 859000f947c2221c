package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// coordinatorConfig is the `phix coordinator serve --config FILE` file (see
// docs/coordinator.md and docs/examples/coordinator.yaml). Flags given on
// the command line override the file's values. It holds paths and the
// names of environment variables, never a secret itself.
type coordinatorConfig struct {
	// ID names this replica in the audit log.
	ID string `yaml:"id"`
	// Listen is the mutual-TLS hospital API address.
	Listen string `yaml:"listen"`
	// AdminListen is a loopback plain-HTTP address for the admin API,
	// health and metrics ("" disables it).
	AdminListen    string `yaml:"admin_listen"`
	AdminTokenFile string `yaml:"admin_token_file"`
	// BaseURL prefixes the upload and download URLs handed out.
	BaseURL string `yaml:"base_url"`
	// DataDir holds the default SQLite database, fs blobs, the embedded
	// NATS store and the audit log.
	DataDir  string `yaml:"data_dir"`
	LogLevel string `yaml:"log_level"`

	TLS struct {
		CA   string `yaml:"ca"`
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
		CRL  string `yaml:"crl"`
	} `yaml:"tls"`

	// Database is a postgres:// URL or a SQLite path (default DATA/coordinator.db).
	Database string `yaml:"database"`

	Blob struct {
		// Backend is "fs" (default) or "s3".
		Backend string `yaml:"backend"`
		// Region is the store's data-residency label (checked by policy).
		Region string `yaml:"region"`
		// Dir is the fs backend's root (default DATA/blobs).
		Dir string `yaml:"dir"`
		// NoDataSync skips the fs backend's data fsync altogether, also when
		// an upload completes (docs/blob.md): only for storage with a
		// battery-backed write cache, and for measuring the sync's cost.
		NoDataSync bool         `yaml:"no_data_sync"`
		S3         s3BlobConfig `yaml:"s3"`
	} `yaml:"blob"`

	NATS struct {
		// URL of an external JetStream server; "" runs one embedded.
		URL string `yaml:"url"`
		// StoreDir is the embedded server's directory (default DATA/nats).
		StoreDir string `yaml:"store_dir"`
	} `yaml:"nats"`

	Policy struct {
		AllowedRegions []string      `yaml:"allowed_regions"`
		ConsentMaxAge  time.Duration `yaml:"consent_max_age"`
		MaxRetention   time.Duration `yaml:"max_retention"`
	} `yaml:"policy"`

	Retention struct {
		DeliveredGrace time.Duration `yaml:"delivered_grace"`
		SweepInterval  time.Duration `yaml:"sweep_interval"`
	} `yaml:"retention"`

	CapabilityTTL time.Duration `yaml:"capability_ttl"`

	Limits struct {
		MaxFileSize       int64         `yaml:"max_file_size"`
		ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
		IdleTimeout       time.Duration `yaml:"idle_timeout"`
		MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	} `yaml:"limits"`

	Audit struct {
		// Key is the audit checkpoint signing key (created if absent;
		// default DATA/audit.key).
		Key string `yaml:"key"`
	} `yaml:"audit"`
}

type s3BlobConfig struct {
	Endpoint      string `yaml:"endpoint"`
	Bucket        string `yaml:"bucket"`
	Prefix        string `yaml:"prefix"`
	SigningRegion string `yaml:"signing_region"`
	// AccessKeyEnv and SecretKeyEnv name the environment variables holding
	// the credentials; both empty uses the AWS default credential chain.
	AccessKeyEnv string `yaml:"access_key_env"`
	SecretKeyEnv string `yaml:"secret_key_env"`
	PartSize     int64  `yaml:"part_size"`
}

// defaultCoordinatorConfig is what serve uses without a file or flags.
func defaultCoordinatorConfig() coordinatorConfig {
	var c coordinatorConfig
	c.ID = "coordinator"
	c.Listen = "127.0.0.1:8443"
	c.LogLevel = "info"
	c.Blob.Backend = "fs"
	c.Blob.Region = "CN-SH"
	c.Policy.AllowedRegions = []string{"CN-*"}
	c.Policy.ConsentMaxAge = 30 * 24 * time.Hour
	c.Policy.MaxRetention = 90 * 24 * time.Hour
	c.Retention.DeliveredGrace = 24 * time.Hour
	c.Retention.SweepInterval = 5 * time.Minute
	c.CapabilityTTL = 15 * time.Minute
	c.Limits.MaxFileSize = 64 << 30
	c.Limits.ReadHeaderTimeout = 10 * time.Second
	c.Limits.IdleTimeout = 2 * time.Minute
	c.Limits.MaxHeaderBytes = 64 << 10
	return c
}

// maxConfigFile bounds the YAML file (it is a few kilobytes).
const maxConfigFile = 1 << 20

// loadCoordinatorConfig reads path over the defaults. Unknown keys are an
// error naming their line; so is a second YAML document.
func loadCoordinatorConfig(path string) (coordinatorConfig, error) {
	c := defaultCoordinatorConfig()
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("coordinator config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return c, fmt.Errorf("coordinator config: %w", err)
	}
	if len(b) > maxConfigFile {
		return c, errors.New("coordinator config: file larger than 1 MiB")
	}
	if err := decodeCoordinatorConfig(b, &c); err != nil {
		return c, fmt.Errorf("coordinator config %s: %w", filepath.Base(path), err)
	}
	return c, nil
}

func decodeCoordinatorConfig(b []byte, c *coordinatorConfig) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err // yaml.TypeError lists "line N: field x not found in type ..."
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("only one YAML document is allowed")
	}
	return nil
}

// bindFlags registers serve's flags on fs with c's values as defaults, so
// a flag given on the command line overrides the file.
func (c *coordinatorConfig) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ID, "id", c.ID, "name of this replica in the audit log")
	fs.StringVar(&c.Listen, "listen", c.Listen, "listen address")
	fs.StringVar(&c.Database, "db", c.Database, "metadata database: postgres://... or a SQLite path (default DATA/coordinator.db)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory (fs blobs, embedded NATS, audit log)")
	fs.StringVar(&c.Blob.Region, "region", c.Blob.Region, "region of the blob store (data residency)")
	fs.Func("allowed-regions", "comma-separated allowed region patterns (default "+strings.Join(c.Policy.AllowedRegions, ",")+")", func(v string) error {
		c.Policy.AllowedRegions = strings.Split(v, ",")
		return nil
	})
	fs.StringVar(&c.NATS.URL, "nats-url", c.NATS.URL, "external NATS JetStream URL (default: embedded)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the admin API bearer token")
	fs.StringVar(&c.TLS.CA, "tls-ca", c.TLS.CA, "network CA certificate (PEM)")
	fs.StringVar(&c.TLS.Cert, "tls-cert", c.TLS.Cert, "coordinator certificate (PEM)")
	fs.StringVar(&c.TLS.Key, "tls-key", c.TLS.Key, "coordinator private key (PEM)")
	fs.StringVar(&c.TLS.CRL, "crl", c.TLS.CRL, "the CA's current CRL (PEM or DER)")
	fs.StringVar(&c.Audit.Key, "audit-key", c.Audit.Key, "audit checkpoint signing key file (created if absent; default DATA/audit.key)")
	fs.StringVar(&c.BaseURL, "base-url", c.BaseURL, "external base URL for upload and download links")
	fs.DurationVar(&c.Retention.SweepInterval, "sweep-interval", c.Retention.SweepInterval, "how often the retention sweeper erases expired and delivered ciphertext")
	fs.DurationVar(&c.Retention.DeliveredGrace, "delivered-grace", c.Retention.DeliveredGrace, "how long ciphertext stays after the receipt (retention_until erases sooner)")
	fs.DurationVar(&c.CapabilityTTL, "capability-ttl", c.CapabilityTTL, "idle lifetime of upload and download capabilities")
	fs.StringVar(&c.AdminListen, "admin-listen", c.AdminListen, "loopback address for the admin API, health and metrics without client certificates (e.g. 127.0.0.1:8444)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.Blob.Backend, "blob-backend", c.Blob.Backend, "fs or s3")
	fs.StringVar(&c.Blob.Dir, "blob-dir", c.Blob.Dir, "fs blob root (default DATA/blobs)")
}

// resolve fills the defaults that depend on the data directory and checks
// the values.
func (c *coordinatorConfig) resolve() error {
	if c.DataDir == "" {
		return errors.New("coordinator serve: data_dir (--data) is required")
	}
	if c.TLS.CA == "" || c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.CRL == "" {
		return errors.New("coordinator serve: tls.ca, tls.cert, tls.key and tls.crl (--tls-ca, --tls-cert, --tls-key, --crl) are required (hospitals authenticate with mutual TLS)")
	}
	if c.Database == "" {
		c.Database = filepath.Join(c.DataDir, "coordinator.db")
	}
	if c.Audit.Key == "" {
		c.Audit.Key = filepath.Join(c.DataDir, "audit.key")
	}
	switch c.Blob.Backend {
	case "fs":
		if c.Blob.Dir == "" {
			c.Blob.Dir = filepath.Join(c.DataDir, "blobs")
		}
	case "s3":
		s := c.Blob.S3
		if s.Endpoint == "" || s.Bucket == "" {
			return errors.New("coordinator serve: blob.s3.endpoint and blob.s3.bucket are required for the s3 backend")
		}
		if (s.AccessKeyEnv == "") != (s.SecretKeyEnv == "") {
			return errors.New("coordinator serve: set both blob.s3.access_key_env and blob.s3.secret_key_env, or neither")
		}
		for _, v := range []string{s.AccessKeyEnv, s.SecretKeyEnv} {
			if v != "" && os.Getenv(v) == "" {
				return fmt.Errorf("coordinator serve: environment variable %s (blob.s3) is empty", v)
			}
		}
	default:
		return errors.New("coordinator serve: blob.backend must be fs or s3")
	}
	if c.Blob.Region == "" {
		return errors.New("coordinator serve: blob.region is required (data residency)")
	}
	if c.NATS.URL == "" && c.NATS.StoreDir == "" {
		c.NATS.StoreDir = filepath.Join(c.DataDir, "nats")
	}
	if len(c.Policy.AllowedRegions) == 0 {
		return errors.New("coordinator serve: policy.allowed_regions must not be empty")
	}
	if _, err := c.slogLevel(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"policy.consent_max_age", c.Policy.ConsentMaxAge}, {"policy.max_retention", c.Policy.MaxRetention},
		{"retention.delivered_grace", c.Retention.DeliveredGrace}, {"retention.sweep_interval", c.Retention.SweepInterval},
		{"capability_ttl", c.CapabilityTTL}, {"limits.read_header_timeout", c.Limits.ReadHeaderTimeout},
		{"limits.idle_timeout", c.Limits.IdleTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("coordinator serve: %s must be a positive duration", d.name)
		}
	}
	if c.Limits.MaxFileSize <= 0 || c.Limits.MaxHeaderBytes <= 0 || c.Blob.S3.PartSize < 0 {
		return errors.New("coordinator serve: limits.max_file_size, limits.max_header_bytes and blob.s3.part_size must be positive")
	}
	return nil
}

func (c *coordinatorConfig) slogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, errors.New("coordinator serve: log_level must be debug, info, warn or error")
	}
	return l, nil
}

// configFlag finds --config in args before the flags are defined (their
// defaults come from the file).
func configFlag(args []string) (string, error) {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			if a == "--" {
				break
			}
			continue
		}
		if hasVal {
			return val, nil
		}
		if i+1 >= len(args) {
			return "", errors.New("coordinator serve: --config needs a file")
		}
		return args[i+1], nil
	}
	return "", nil
}
