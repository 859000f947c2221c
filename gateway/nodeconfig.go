package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// NodeConfig is the YAML configuration of `phix node`: one hospital's FHIR
// server and edge gateway (docs/gateway.md "phix node", example in
// docs/examples/node.yaml). Relative paths are relative to the file.
type NodeConfig struct {
	Hospital string `yaml:"hospital"`
	// Region is the hospital's region code (e.g. CN-SH), for its registry entry.
	Region string `yaml:"region"`
	// Suite is intl (default) or gm.
	Suite string `yaml:"suite"`
	// Data holds the FHIR database, keyring, audit log and gateway state.
	Data    string            `yaml:"data"`
	FHIR    NodeFHIRConfig    `yaml:"fhir"`
	Auth    NodeAuthConfig    `yaml:"auth"`
	Gateway NodeGatewayConfig `yaml:"gateway"`
}

// NodeAuthConfig configures the node's access control: its own
// authorization server (issuer http://FHIR-LISTEN/auth), enforcement of
// SMART scopes, the cedar policy and signed consents on every interaction,
// break-glass and TOTP (docs/gateway.md "Access control of phix node").
type NodeAuthConfig struct {
	// DB is the auth store: a SQLite file or a postgres:// DSN (default
	// DATA/auth.db). `phix auth --db` manages its users and clients.
	DB string `yaml:"db"`
	// Policy is the cedar policy directory (default DATA/policy; the
	// shipped access/policy set is copied into an empty directory). It is
	// reloaded on SIGHUP or when a file changes.
	Policy string `yaml:"policy"`
	// PeerConsents also trusts consents signed with the signing keys of
	// the peers in gateway.peers_file, besides the node's own (default true).
	PeerConsents *bool `yaml:"peer_consents"`
	// LocalClients registers the node's clinician-administrator and
	// auditor backend-services clients (keys in memory only) and writes
	// their current tokens to fhir.token_file and fhir.auditor_token_file,
	// rewritten every 4 minutes (default true; false: use clients of your
	// own, `phix auth clients add`).
	LocalClients *bool `yaml:"local_clients"`
	// IdPs are external OpenID providers whose tokens are accepted too.
	IdPs []NodeIdP `yaml:"idps"`
	// OrganisationTags makes each resource's owning organisation (the
	// writer's org claim, as a server-set meta.tag) a policy attribute, for
	// a node several organisations share (docs/enforcement.md, "Owning
	// organisation"). Default false: every resource is the node's.
	OrganisationTags bool `yaml:"organisation_tags"`
}

// NodeIdP is an external OpenID provider.
type NodeIdP struct {
	Issuer string `yaml:"issuer"`
	// Audience is what its tokens' aud must name (default the FHIR base URL).
	Audience []string `yaml:"audience"`
	// JWKSURL skips discovery when set.
	JWKSURL string `yaml:"jwks_url"`
}

// NodeFHIRConfig configures the FHIR server.
type NodeFHIRConfig struct {
	Listen string `yaml:"listen"`
	// TokenFile receives the current token of the node's
	// clinician-administrator client (auth.local_clients), for `phix
	// transfer` and local tools; AuditorTokenFile the auditor's. Both are
	// short-lived (300 s) and rewritten before they expire.
	TokenFile        string `yaml:"token_file"`
	AuditorTokenFile string `yaml:"auditor_token_file"`
}

// NodeGatewayConfig configures the edge gateway.
type NodeGatewayConfig struct {
	// Listen is the gateway's local API (for phix transfer); loopback only.
	Listen string `yaml:"listen"`
	// Coordinator is the coordinator's https URL.
	Coordinator string `yaml:"coordinator"`
	// CoordinatorID is the coordinator's principal id in its certificate.
	CoordinatorID string `yaml:"coordinator_id"`
	// CoordinatorPin is the SPKI pin (sha256/...) of the coordinator's key.
	CoordinatorPin string `yaml:"coordinator_pin"`
	// CAFile, CertFile, KeyFile: the network CA and this hospital's mutual
	// TLS certificate and key (phix pki); CRLFile the CA's current CRL
	// (revocation is not optional).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CRLFile  string `yaml:"crl_file"`
	// PeersFile is the registry export (JSON array of registry entries)
	// whose keys this gateway trusts.
	PeersFile string `yaml:"peers_file"`
	// DeliveryDir receives inbound files (default DATA/delivered).
	DeliveryDir string `yaml:"delivery_dir"`
	// DropFolder is watched for batches to send (docs/gateway.md).
	DropFolder string `yaml:"drop_folder"`
	// Receive polls the inbox and delivers in the background (default true).
	Receive *bool `yaml:"receive"`
	// ChunkSize is the upload chunk size in bytes (default 64 MiB).
	ChunkSize int `yaml:"chunk_size"`
	// Retention is how long the coordinator may keep the ciphertext
	// (default 720h).
	Retention time.Duration `yaml:"retention"`
	// Reidentify lists the purposes for which this hospital may
	// re-identify received de-identified records (default: none).
	Reidentify []string `yaml:"reidentify"`
	// Policy replaces the default outbound policy.
	Policy *Policy `yaml:"policy"`
}

// ParseNodeConfig reads a node configuration, refusing unknown fields, and
// resolves relative paths against baseDir.
func ParseNodeConfig(data []byte, baseDir string) (*NodeConfig, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c NodeConfig
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	if c.Hospital == "" || c.Data == "" || c.FHIR.Listen == "" || c.Gateway.Listen == "" || c.Gateway.Coordinator == "" {
		return nil, errors.New("node config: hospital, data, fhir.listen, gateway.listen and gateway.coordinator are required")
	}
	if c.Gateway.CAFile == "" || c.Gateway.CertFile == "" || c.Gateway.KeyFile == "" || c.Gateway.CoordinatorPin == "" || c.Gateway.PeersFile == "" || c.Gateway.CRLFile == "" {
		return nil, errors.New("node config: gateway.ca_file, cert_file, key_file, crl_file, coordinator_pin and peers_file are required")
	}
	if c.Suite == "" {
		c.Suite = "intl"
	}
	if c.Gateway.CoordinatorID == "" {
		c.Gateway.CoordinatorID = "coordinator"
	}
	if c.Gateway.Receive == nil {
		t := true
		c.Gateway.Receive = &t
	}
	if c.Gateway.Policy != nil {
		if err := c.Gateway.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("node config: %w", err)
		}
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(baseDir, *p)
		}
	}
	for _, idp := range c.Auth.IdPs {
		if idp.Issuer == "" {
			return nil, errors.New("node config: every auth.idps entry needs an issuer")
		}
	}
	t := true
	if c.Auth.PeerConsents == nil {
		c.Auth.PeerConsents = &t
	}
	if c.Auth.LocalClients == nil {
		c.Auth.LocalClients = &t
	}
	if c.Auth.DB != "" && !strings.HasPrefix(c.Auth.DB, "postgres://") && !strings.HasPrefix(c.Auth.DB, "postgresql://") {
		abs(&c.Auth.DB)
	}
	for _, p := range []*string{&c.Data, &c.Auth.Policy, &c.FHIR.TokenFile, &c.FHIR.AuditorTokenFile, &c.Gateway.CAFile, &c.Gateway.CertFile,
		&c.Gateway.KeyFile, &c.Gateway.CRLFile, &c.Gateway.PeersFile, &c.Gateway.DeliveryDir, &c.Gateway.DropFolder} {
		abs(p)
	}
	if c.Auth.DB == "" {
		c.Auth.DB = filepath.Join(c.Data, "auth.db")
	}
	if c.Auth.Policy == "" {
		c.Auth.Policy = filepath.Join(c.Data, "policy")
	}
	if c.FHIR.TokenFile == "" {
		c.FHIR.TokenFile = filepath.Join(c.Data, "clinician.token")
	}
	if c.FHIR.AuditorTokenFile == "" {
		c.FHIR.AuditorTokenFile = filepath.Join(c.Data, "auditor.token")
	}
	return &c, nil
}

// LoadNodeConfig reads and parses a node configuration file.
func LoadNodeConfig(path string) (*NodeConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return ParseNodeConfig(b, dir)
}
