// Package devnet runs the phix development network in one process on
// loopback: a coordinator (mutual TLS, network CA under DIR/pki) and two
// hospitals, hospital-a and hospital-b, each a node (FHIR server on its own
// SQLite database, keyring, audit log) with its edge gateway. It writes the files the
// end-to-end checks rely on (DIR/dev/endpoints.json and DIR/dev/<id>.token,
// DESIGN.md "The dev network"); docs/dev-network.md describes them.
package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"phix/access/breakglass"
	"phix/access/policy"
	"phix/auth/nodeauth"
	"phix/auth/oidc"
	"phix/auth/totp"
	"phix/fhirserver"
	"phix/gateway"
	"phix/pki"
	"phix/store/sqlite"
	"phix/transfer"
)

// HospitalIDs are the hospitals of the dev network, in order.
var HospitalIDs = []string{"hospital-a", "hospital-b"}

// DefaultBasePort is hospital-a's FHIR port; hospital-b gets the next one.
const DefaultBasePort = 18081

// Options configures a dev network.
type Options struct {
	DataDir string // required
	// BasePort is the first hospital's port (default 18081); each next
	// hospital gets the next port. A busy port falls back to a free one.
	// -1 picks free ports for every hospital (tests).
	BasePort int
	Logger   *slog.Logger // request logs; nil discards
	// NoSeed skips the demo data written on first start.
	NoSeed bool
	// IdPs are external OpenID providers whose tokens every hospital
	// accepts besides its own authorization server's. An empty Audience
	// means the hospital's FHIR base URL.
	IdPs []oidc.Provider
	// Coordinator chooses the coordinator's engines (default embedded).
	Coordinator CoordinatorOptions
	// Gateway, if set, adjusts each hospital's gateway configuration (tests).
	Gateway func(hospital string, cfg *gateway.Config)
	// WrapCoordinator, if set, wraps each gateway's transports to the
	// coordinator (tests inject network faults with it). It is called
	// twice per hospital: for the API client and for the HTTP/1.1 client
	// of file bodies (coord.Client.Bulk).
	WrapCoordinator func(hospital string, rt http.RoundTripper) http.RoundTripper
	// Suite is the hospitals' algorithm suite: intl (default) or gm.
	Suite string
	// NoAutoReceive stops the gateways from polling their inbox in the
	// background (then `phix transfer receive` or ReceiveOnce does).
	NoAutoReceive bool
}

// Hospital is one running hospital node.
type Hospital struct {
	ID    string
	FHIR  string // base URL of the FHIR API
	Token string // bearer token of the hospital's clinician-administrator
	// AuditorToken reads only the audit log (/audit/, AuditEvent).
	AuditorToken string
	// AuditDB is the hospital's audit log database (SQLite), for
	// `phix audit verify --db`.
	AuditDB string
	// Seeded reports whether this start created the database and seeded it.
	Seeded bool
	// Auth is the issuer URL of the hospital's own authorization server
	// (discovery at Auth + /.well-known/openid-configuration).
	Auth string
	// Policy is the hospital's access policy, loaded from
	// DIR/<hospital>/policy/*.cedar (the shipped set, copied on first
	// start) and reloaded on SIGHUP or when a file changes.
	Policy *policy.Engine
	// TOTP enrols and verifies second factors (secrets sealed in auth.db).
	TOTP *totp.Manager
	// BreakGlass opens emergency grants (policy, justification, TOTP),
	// audited as security alerts, in a review queue for the auditor.
	BreakGlass *breakglass.Service
	// Gateway is the hospital's edge gateway; GatewayURL its local API.
	Gateway    *gateway.Gateway
	GatewayURL string

	node    *fhirserver.Node
	srv     *fhirserver.Server
	keys    gateway.Keys
	auth    fhirserver.Authenticator // the FHIR server's, also guarding the gateway API
	tokenAS *hospitalAuth            // current tokens for the gateway's calls to the FHIR server
}

// Demo names the demo transfer of endpoints.json: a patient of hospital-a
// with a signed consent for disclosure to hospital-b.
type Demo struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Patient string `json:"patient"`
	Consent string `json:"consent"`
}

// Network is a running dev network.
type Network struct {
	Hospitals []Hospital
	// EndpointsFile is DIR/dev/endpoints.json.
	EndpointsFile string
	// Coordinator is the (first) coordinator replica's URL; Coordinators all.
	Coordinator  string
	Coordinators []string
	// CoordinatorStore is the coordinator's metadata store (tests).
	CoordinatorStore transfer.Store
	// Demo is the seeded demo transfer.
	Demo Demo

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	close  []func() error
}

// Endpoints is the shape of DIR/dev/endpoints.json (DESIGN.md).
type Endpoints struct {
	// Coordinator is the coordinator's URL (mutual TLS; CA in ca.pem).
	Coordinator string             `json:"coordinator"`
	Hospitals   []EndpointHospital `json:"hospitals"`
	Demo        *Demo              `json:"demo,omitempty"`
	// CAFile is the network CA (ca.pem), relative to DIR/dev.
	CAFile string `json:"ca_file,omitempty"`
}

// EndpointHospital is one hospital in endpoints.json. Gateway and Portal are
// "" until those roles exist.
type EndpointHospital struct {
	ID        string `json:"id"`
	FHIR      string `json:"fhir"`
	Gateway   string `json:"gateway"`
	Portal    string `json:"portal"`
	TokenFile string `json:"token_file"`
	// AuditorTokenFile is the auditor's token file, next to TokenFile.
	AuditorTokenFile string `json:"auditor_token_file"`
	// Auth is the issuer URL of the hospital's own authorization server.
	Auth string `json:"auth"`
}

// Start brings the network up and returns once every server listens. Stop
// it by cancelling ctx or calling Close; Wait returns when it has stopped.
func Start(ctx context.Context, opts Options) (*Network, error) {
	if opts.DataDir == "" {
		return nil, errors.New("devnet: DataDir is required")
	}
	if opts.BasePort == 0 {
		opts.BasePort = DefaultBasePort
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	devDir := filepath.Join(opts.DataDir, "dev")
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &Network{cancel: cancel, EndpointsFile: filepath.Join(devDir, "endpoints.json")}
	fail := func(err error) (*Network, error) {
		cancel()
		n.wg.Wait()
		n.closeAll()
		return nil, err
	}
	p, err := openPKI(filepath.Join(opts.DataDir, "pki"))
	if err != nil {
		return fail(fmt.Errorf("devnet: pki: %w", err))
	}
	if err := pki.WriteFileAtomic(filepath.Join(devDir, "ca.pem"), p.ca.CertificatePEM(), 0o644); err != nil {
		return fail(err)
	}
	for i, id := range HospitalIDs {
		h, err := n.startHospital(ctx, opts, devDir, id, i, logger.With("hospital", id))
		if err != nil {
			return fail(fmt.Errorf("devnet: %s: %w", id, err))
		}
		n.Hospitals = append(n.Hospitals, *h)
	}
	co, err := n.startCoordinator(ctx, opts, p, logger.With("role", "coordinator"))
	if err != nil {
		return fail(fmt.Errorf("devnet: coordinator: %w", err))
	}
	n.Coordinator, n.Coordinators, n.CoordinatorStore = co.urls[0], co.urls, co.store
	// Register every hospital (public keys and certificate pins) and give
	// each gateway the registry export as its trusted peers.
	var entries []transfer.Hospital
	for i := range n.Hospitals {
		h := &n.Hospitals[i]
		_, pin, err := p.issue(ctx, pki.Hospital(h.ID), h.ID)
		if err != nil {
			return fail(err)
		}
		e := h.keys.RegistryEntry(h.ID, hospitalRegions[h.ID], []string{"127.0.0.0/8", "::1/128"}, []string{pin}, partners(h.ID))
		entries = append(entries, e)
		if _, err := co.store.Hospital(ctx, h.ID); err == nil {
			continue // registered on an earlier start (keys and pins are kept)
		}
		if _, err := (transfer.Registry{Store: co.store}).Add(ctx, e); err != nil {
			return fail(fmt.Errorf("devnet: register %s: %w", h.ID, err))
		}
	}
	reg, err := registryExport(entries)
	if err != nil {
		return fail(err)
	}
	if err := pki.WriteFileAtomic(filepath.Join(devDir, "registry.json"), reg, 0o644); err != nil {
		return fail(err)
	}
	peers, err := gateway.ParsePeers(reg)
	if err != nil {
		return fail(err)
	}
	eps := Endpoints{Coordinator: co.urls[0], CAFile: "ca.pem"}
	for i := range n.Hospitals {
		h := &n.Hospitals[i]
		if err := n.startGateway(ctx, opts, h, p, co, i, peers, logger.With("hospital", h.ID, "role", "gateway")); err != nil {
			return fail(fmt.Errorf("devnet: %s gateway: %w", h.ID, err))
		}
		eps.Hospitals = append(eps.Hospitals, EndpointHospital{ID: h.ID, FHIR: h.FHIR, Gateway: h.GatewayURL, TokenFile: h.ID + ".token", AuditorTokenFile: h.ID + ".auditor.token", Auth: h.Auth})
	}
	demo, err := n.demo(ctx, opts, devDir)
	if err != nil {
		return fail(fmt.Errorf("devnet: demo data: %w", err))
	}
	if demo != nil {
		n.Demo, eps.Demo = *demo, demo
	}
	if err := writeJSONFile(n.EndpointsFile, eps); err != nil {
		return fail(err)
	}
	go func() {
		<-ctx.Done()
		n.wg.Wait()
		n.closeAll()
	}()
	return n, nil
}

func (n *Network) startHospital(ctx context.Context, opts Options, devDir, id string, i int, logger *slog.Logger) (*Hospital, error) {
	dir := filepath.Join(opts.DataDir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	dbPath := filepath.Join(dir, "fhir.db")
	_, statErr := os.Stat(dbPath)
	fresh := errors.Is(statErr, os.ErrNotExist)
	st, err := sqlite.Open(dbPath)
	if err != nil {
		return nil, err
	}
	n.close = append(n.close, st.Close)
	authDB, err := openAuthDB(ctx, dir)
	if err != nil {
		return nil, err
	}
	n.close = append(n.close, authDB.Close)
	// The listener comes first: the issuer and audience of the hospital's
	// tokens are URLs on it.
	ln, err := listen(opts.BasePort, i)
	if err != nil {
		return nil, err
	}
	n.close = append(n.close, func() error { ln.Close(); return nil })
	root := "http://" + ln.Addr().String()
	base := root + fhirserver.BasePath
	issuer := root + nodeauth.AuthPath
	auth, err := nodeauth.NewBearerAuth(issuer, base, opts.IdPs, authDB)
	if err != nil {
		return nil, err
	}
	// Keyring (dev master key file), audit log and de-identification keys
	// live in the hospital's directory.
	node, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: dir, Hospital: id, Suite: opts.Suite, Auth: auth, Logger: logger})
	if err != nil {
		return nil, err
	}
	n.close = append(n.close, node.Close)
	keys, err := gateway.KeysFromKMS(ctx, node.Keys, id, node.DeidKeys)
	if err != nil {
		return nil, err
	}
	// The hospital's access control (auth/nodeauth, shared with phix node
	// and phix fhir --auth-server): its own authorization server, TOTP,
	// the policy in DIR/<hospital>/policy (the shipped set, copied on
	// first start) and break-glass audited as security alerts.
	ha, err := newHospitalAuth(ctx, nodeauth.Config{DB: authDB, Keys: node.Keys, Suite: opts.Suite, Hospital: id, Issuer: issuer, Audience: base,
		PolicyDir: filepath.Join(dir, "policy"), Audit: node.Audit, Pseudonyms: node.Pseudonyms, Logger: logger}, devDir)
	if err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ha.WatchPolicy(ctx)
	}()
	// Every interaction is decided by the token's scopes, the cedar policy
	// and the patient's consents signed with this hospital's key
	// (docs/enforcement.md); TOTP gates erasure and consent overrides.
	srv, err := fhirserver.New(fhirserver.Config{Store: st, Auth: auth, BaseURL: base, Logger: logger,
		Audit: node.Audit, AuditPseudonyms: node.Pseudonyms, DeidKeys: node.DeidKeys, Protector: node.Protector, Eraser: node.Eraser, Signing: node.Signing,
		Enforcement: ha.Enforcement(node.Signing, nodeauth.Or(ha.Grants.Check, adminGrant(id), nodeauth.ClientGrants(ha.consents.ID)))})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	ha.Mount(mux, fhirserver.BasePath, auth)
	mux.Handle("/", srv)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := fhirserver.Serve(ctx, ln, mux); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.setErr(err)
		}
	}()
	// Tokens come from the hospital's own authorization server, through
	// its token endpoint, and are rewritten before they expire.
	tokens, err := ha.refresh(ctx)
	if err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ha.keepFresh(ctx, func(err error) { logger.Error("dev token refresh failed", "err", err) })
	}()
	h := &Hospital{ID: id, FHIR: base, Token: tokens[0], AuditorToken: tokens[1], AuditDB: filepath.Join(dir, "audit.db"), Auth: issuer,
		Policy: ha.Policy, TOTP: ha.TOTP, BreakGlass: ha.BreakGlass, node: node, srv: srv, keys: keys, auth: auth, tokenAS: ha}
	if fresh && !opts.NoSeed {
		if err := seed(ctx, srv, tokens[0], id); err != nil {
			return nil, err
		}
		h.Seeded = true
	}
	return h, nil
}

func (n *Network) setErr(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err == nil {
		n.err = err
	}
}

// listen takes the hospital's stable port, or any free one when it is busy.
func listen(basePort, i int) (net.Listener, error) {
	if basePort > 0 {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(basePort+i)); err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// Close stops the network and waits for it.
func (n *Network) Close() error {
	n.cancel()
	return n.Wait()
}

// Wait blocks until the network has stopped (ctx cancelled or Close) and
// returns the first server error.
func (n *Network) Wait() error {
	n.wg.Wait()
	n.closeAll()
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func (n *Network) closeAll() {
	n.mu.Lock()
	fns := n.close
	n.close = nil
	n.mu.Unlock()
	for _, f := range fns {
		_ = f()
	}
}

// writeJSONFile writes v atomically (temp file and rename).
func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// adminGrant is the dev network's standing explicit treatment grant: the
// hospital's clinician-administrator client (its token file, for trying the
// API by hand) may treat every patient of its hospital. The edge gateway has
// no standing grant: it collects and imports under per-transfer grants
// (nodeauth.Grants, opened around each collect and import). Persons (the
// dev clinician of the login flow) need a CareTeam or Encounter like
// anywhere else.
func adminGrant(hospital string) func(ctx context.Context, user, patient string) (bool, error) {
	admin := "Client/" + hospital + "-admin"
	return func(_ context.Context, user, _ string) (bool, error) { return user == admin, nil }
}
