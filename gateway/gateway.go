// Package gateway is the hospital edge gateway of seed 000: the outbound
// pipeline (collect, minimize, de-identify, DLP, seal, sign, upload) and the
// inbound pipeline (inbox, download, verify, unseal, deliver, receipt)
// between a hospital's FHIR server and the regional coordinator.
//
// The gateway talks to its FHIR server over the FHIR REST API and to the
// coordinator over mutual-TLS HTTP (package coord); it keeps its state as
// small JSON files in its data directory so that uploads and deliveries
// resume after a restart. docs/gateway.md describes the design.
package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"phix/audit"
	"phix/deid"
	"phix/gateway/coord"
	"phix/gateway/tusclient"
	"phix/kms"
	"phix/suite"
	"phix/transfer"
)

// Auditor records the outcome of every stage (audit.Log implements it).
type Auditor interface {
	Append(ctx context.Context, ev audit.Event) (int64, error)
}

// Keys are the hospital's own keys as the gateway uses them.
type Keys struct {
	Suite suite.Suite
	// Signer signs manifests, consent statements and receipts (the key
	// the coordinator's registry holds as signing_key).
	Signer suite.SigningKey
	// Recipient opens data keys wrapped for this hospital (wrap_key).
	Recipient        suite.RecipientKey
	RecipientVersion uint32
	// KEKID and KEK are the sender's own key-encryption key: every sealed
	// file's data key is also wrapped for it, so the sender can open what it
	// sent and crypto-erase it by destroying the KEK.
	KEKID string
	KEK   []byte
	// Deid are the de-identification project keys.
	Deid deid.Keys
}

// OutboundKEKName is the kms data-key name of the gateway's own KEK.
const OutboundKEKName = "gateway-outbound-kek"

// KeysFromKMS reads the hospital's current keys from its key manager.
func KeysFromKMS(ctx context.Context, m *kms.Manager, hospital string, deidKeys deid.Keys) (Keys, error) {
	signer, _, err := m.Signer(ctx, hospital, 0)
	if err != nil {
		return Keys{}, err
	}
	rk, rv, err := m.RecipientKey(ctx, hospital, 0)
	if err != nil {
		return Keys{}, err
	}
	s, err := suite.Lookup(signer.Suite())
	if err != nil {
		return Keys{}, err
	}
	kek, err := m.EnsureDataKey(ctx, hospital, kms.KindFile, OutboundKEKName)
	if err != nil {
		return Keys{}, err
	}
	id, err := kms.DataKeyID(hospital, kms.KindFile, OutboundKEKName)
	if err != nil {
		return Keys{}, err
	}
	return Keys{Suite: s, Signer: signer, Recipient: rk, RecipientVersion: uint32(rv), KEKID: "kms:" + id, KEK: kek, Deid: deidKeys}, nil
}

// RegistryEntry is this hospital's public registry entry (what the
// coordinator and the peers must hold): keys, suite and certificate pins.
func (k Keys) RegistryEntry(id, region string, networks, pins []string, partners map[string]transfer.Partner) transfer.Hospital {
	return transfer.Hospital{ID: id, NameEN: id, NameZH: id, Region: region, Networks: networks, Partners: partners,
		Suite: string(k.Suite.ID()), SigningKey: base64.StdEncoding.EncodeToString(k.Signer.Public().Bytes()),
		WrapKey: base64.StdEncoding.EncodeToString(k.Recipient.Public().Bytes()), Pins: pins, Status: transfer.StatusActive}
}

// Peer is another hospital's public keys, from the registry export the
// gateway trusts (not from the coordinator at transfer time: a coordinator
// that swapped keys could otherwise read or forge transfers).
type Peer struct {
	ID          string
	Suite       suite.Suite
	Verify      suite.VerifyKey
	Wrap        suite.RecipientPublicKey
	WrapVersion uint32
}

// ParsePeers reads a registry export: a JSON array of transfer.Hospital.
func ParsePeers(data []byte) (map[string]*Peer, error) {
	var hs []transfer.Hospital
	if err := json.Unmarshal(data, &hs); err != nil {
		return nil, errors.New("gateway: the peers file is not a JSON array of registry entries")
	}
	out := map[string]*Peer{}
	for _, h := range hs {
		s, err := suite.Lookup(suite.ID(h.Suite))
		if err != nil {
			return nil, fmt.Errorf("gateway: peer %s: unknown suite", h.ID)
		}
		sk, err1 := base64.StdEncoding.DecodeString(h.SigningKey)
		wk, err2 := base64.StdEncoding.DecodeString(h.WrapKey)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("gateway: peer %s: keys are not base64", h.ID)
		}
		vk, err := s.ParseVerifyKey(sk)
		if err != nil {
			return nil, fmt.Errorf("gateway: peer %s: signing key does not parse", h.ID)
		}
		rk, err := s.ParseRecipientPublicKey(wk)
		if err != nil {
			return nil, fmt.Errorf("gateway: peer %s: wrap key does not parse", h.ID)
		}
		out[h.ID] = &Peer{ID: h.ID, Suite: s, Verify: vk, Wrap: rk, WrapVersion: 1}
	}
	return out, nil
}

// Config configures a Gateway.
type Config struct {
	Hospital string // this hospital's id
	DataDir  string // state, spool and inbound staging
	// DeliveryDir receives inbound files other than FHIR bundles (default
	// DataDir/delivered).
	DeliveryDir string
	Keys        Keys
	Peers       map[string]*Peer
	Coordinator *coord.Client
	FHIR        *FHIRClient
	Audit       Auditor
	Policy      Policy
	Logger      *slog.Logger
	// ChunkSize is the tus chunk size (default tusclient.DefaultChunkSize,
	// 64 MiB; chunks are streamed from the spool, so it costs no memory).
	ChunkSize int
	// UploadChecksums sends every tus chunk with a SHA-256 Upload-Checksum.
	// Off by default: the mutual-TLS channel already authenticates every
	// byte in transit and the coordinator checks the whole file's hash
	// against the signed manifest at complete, so the checksums caught
	// nothing more and cost a SHA-256 pass on each side.
	UploadChecksums bool
	// ConsentCheckEvery is how often an upload in progress re-checks its
	// consent (default 2 s).
	ConsentCheckEvery time.Duration
	// Retention is how long the coordinator may keep the ciphertext
	// (retention_until = now + Retention; default 30 days).
	Retention time.Duration
	// Reidentify are the purposes for which this gateway, as a receiver,
	// is entitled to re-identify a de-identified record with the table the
	// sender shipped (audited per lookup); nil: never.
	Reidentify []string
	// DropFolder, if set, is watched for batches to send (dropfolder.go).
	DropFolder string
	// DeliveryFS writes inbound files; nil is the operating system.
	DeliveryFS FS
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Gateway is a running edge gateway.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	state *stateStore

	mu      sync.Mutex
	running map[string]context.CancelFunc // outbound uploads in progress
	sent    map[string]int64              // their progress (bytes confirmed)
	inbound sync.Mutex                    // one inbound pass at a time
	wg      sync.WaitGroup
}

// New opens the gateway's state in cfg.DataDir.
func New(cfg Config) (*Gateway, error) {
	if cfg.Hospital == "" || cfg.DataDir == "" || cfg.Coordinator == nil || cfg.Audit == nil || cfg.Keys.Signer == nil {
		return nil, errors.New("gateway: Config needs Hospital, DataDir, Coordinator, Audit and Keys")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DeliveryDir == "" {
		cfg.DeliveryDir = filepath.Join(cfg.DataDir, "delivered")
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = tusclient.DefaultChunkSize
	}
	if cfg.ConsentCheckEvery <= 0 {
		cfg.ConsentCheckEvery = 2 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.DeliveryFS == nil {
		cfg.DeliveryFS = OSFS{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Policy.Purposes == nil {
		cfg.Policy = DefaultPolicy()
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.DataDir, cfg.DeliveryDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	st, err := openState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, log: cfg.Logger, state: st, running: map[string]context.CancelFunc{}, sent: map[string]int64{}}, nil
}

// Hospital is the gateway's hospital id.
func (g *Gateway) Hospital() string { return g.cfg.Hospital }

// Run resumes unfinished uploads and, when inbound is true, polls the inbox
// until ctx ends; then it stops the uploads in progress (they resume on the
// next start) and returns.
func (g *Gateway) Run(ctx context.Context, inbound bool) error {
	g.ResumeOutbound(ctx)
	if g.cfg.DropFolder != "" {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.WatchDropFolder(ctx, g.cfg.DropFolder, 5*time.Second)
		}()
	}
	if !inbound {
		<-ctx.Done()
		g.Stop()
		return nil
	}
	backoff := time.Second
	for ctx.Err() == nil {
		_, err := g.ReceiveOnce(ctx, 30*time.Second)
		if err != nil && ctx.Err() == nil {
			g.log.Warn("inbound pass failed", "error", err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
	g.Stop()
	return nil
}

// Wait waits for background uploads to stop (after their context ended).
func (g *Gateway) Wait() { g.wg.Wait() }

// record appends an audit event for one stage. Stage outcomes carry codes,
// pseudonyms and hashes only.
func (g *Gateway) record(ctx context.Context, stage, ref string, ok bool, ev audit.Event) {
	if ev.Action == "" {
		ev.Action = audit.ActionTransfer
	}
	if ev.Outcome == "" {
		ev.Outcome = audit.OutcomeSuccess
		if !ok {
			ev.Outcome = audit.OutcomeSeriousFailure
		}
	}
	if ev.Who.Org == "" {
		ev.Who = audit.Who{Org: g.cfg.Hospital, Role: "edge-gateway"}
	}
	ev.RequestID = ref
	effect := "permit"
	if !ok {
		effect = "deny"
	}
	if ev.Decision == nil {
		ev.Decision = &audit.Decision{Effect: effect}
	}
	ev.Decision.Policies = append([]string{"gateway:" + stage}, ev.Decision.Policies...)
	if _, err := g.cfg.Audit.Append(ctx, ev); err != nil {
		g.log.Error("audit append failed", "stage", stage, "error", err.Error())
	}
}

// httpError is an error the gateway API answers with a status and a code.
type httpError struct {
	Status int
	Code   string
	Msg    string
	// Findings are DLP findings (kind and location only).
	Findings []Finding
}

func (e *httpError) Error() string { return e.Code + ": " + e.Msg }

func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Error codes of the gateway (docs/gateway.md).
const (
	CodeBadRequest      = "GW-1001"
	CodeNotFound        = "GW-1004"
	CodeConsent         = "GW-1101" // consent missing, not verified, or does not permit
	CodeConsentWithdraw = "GW-1102" // consent withdrawn during the send
	CodeDLPBlocked      = "GW-1201"
	CodeDeid            = "GW-1202" // de-identification failed or quarantined
	CodeUnscannable     = "GW-1203" // a file kind DLP cannot scan under a profile that requires it
	CodeCoordinator     = "GW-1301" // coordinator refused or unreachable
	CodeVerify          = "GW-1401" // inbound signature or hash verification failed
	CodeNoKey           = "GW-1402" // no key of this gateway opens the transfer
	CodeDeliver         = "GW-1501" // delivery failed (disk, FHIR import)
	CodeInternal        = "GW-1999"
)

// StatusOf maps an error to an HTTP status for the API.
func statusOf(err error) (int, string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.Status, he.Code
	}
	if coord.IsProblem(err) {
		return http.StatusBadGateway, CodeCoordinator
	}
	return http.StatusInternalServerError, CodeInternal
}
