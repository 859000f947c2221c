package transfer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"phix/audit"
	"phix/blob"
	"phix/pki"
	"phix/queue"
)

// Config configures a Server.
type Config struct {
	Store   Store
	Blobs   blob.Store
	Queue   queue.Queue
	Auditor Auditor
	// Identifier names callers; default TLSIdentifier.
	Identifier Identifier
	// AdminToken guards /v1/admin (compared in constant time); empty disables the admin API.
	AdminToken string
	Policy     PolicyConfig
	// CapabilityTTL is the idle lifetime of a capability (default 15 min).
	CapabilityTTL time.Duration
	// BaseURL prefixes the upload and download URLs handed out ("" for
	// relative URLs).
	BaseURL string
	// MaxFileSize bounds a declared file (default 64 GiB); Tus-Max-Size.
	MaxFileSize int64
	// DeliveredGrace is how long ciphertext stays after the receipt before
	// the sweeper erases it (default 24 h); retention_until erases sooner.
	DeliveredGrace time.Duration
	// ID names this coordinator in the audit log (default "coordinator").
	ID string
	// Metrics is the Prometheus registry the Server registers its series
	// on (default: a registry of its own with the Go and process
	// collectors; never the global default registry).
	Metrics *prometheus.Registry
	Logger  *slog.Logger
	Now     func() time.Time
}

// Server is the coordinator's HTTP API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	log     *slog.Logger
	metrics *metrics
	// uploadLocks serialises PATCHes to one file within this replica.
	uploadLocks fileLocks
}

// NewServer checks cfg and builds the handler.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Blobs == nil || cfg.Queue == nil || cfg.Auditor == nil {
		return nil, errors.New("transfer: Store, Blobs, Queue and Auditor are required")
	}
	if cfg.Identifier == nil {
		cfg.Identifier = TLSIdentifier{}
	}
	if cfg.CapabilityTTL == 0 {
		cfg.CapabilityTTL = 15 * time.Minute
	}
	if cfg.MaxFileSize == 0 {
		cfg.MaxFileSize = 64 << 30
	}
	if cfg.DeliveredGrace == 0 {
		cfg.DeliveredGrace = 24 * time.Hour
	}
	if cfg.ID == "" {
		cfg.ID = "coordinator"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Policy.defaults()
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, metrics: newMetrics(cfg.Metrics)}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", s.metrics.handler())

	m.HandleFunc("GET /v1/admin/hospitals", s.admin(s.listHospitals))
	m.HandleFunc("POST /v1/admin/hospitals", s.admin(s.addHospital))
	m.HandleFunc("POST /v1/admin/hospitals/{id}/suspend", s.admin(s.suspendHospital))

	m.HandleFunc("POST /v1/transfers", s.hospital(s.createTransfer))
	m.HandleFunc("GET /v1/transfers", s.hospital(s.listTransfers))
	m.HandleFunc("GET /v1/transfers/{id}", s.hospital(s.getTransfer))
	m.HandleFunc("POST /v1/transfers/{id}/complete", s.hospital(s.complete))
	m.HandleFunc("POST /v1/transfers/{id}/receipt", s.hospital(s.receipt))
	m.HandleFunc("GET /v1/inbox", s.hospital(s.inbox))
	m.HandleFunc("POST /v1/consents/{id}/withdraw", s.hospital(s.withdrawConsent))

	m.HandleFunc("OPTIONS /v1/uploads/{token}", s.tusOptions)
	m.HandleFunc("POST /v1/uploads/{token}", s.hospital(s.tusCreate))
	m.HandleFunc("HEAD /v1/uploads/{token}", s.hospital(s.tusHead))
	m.HandleFunc("PATCH /v1/uploads/{token}", s.hospital(s.tusPatch))
	m.HandleFunc("DELETE /v1/uploads/{token}", s.hospital(s.tusDelete))
	m.HandleFunc("GET /v1/downloads/{token}", s.hospital(s.download))
	m.HandleFunc("HEAD /v1/downloads/{token}", s.hospital(s.download))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: 200}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			// The panic value may hold request data (a file name, a
			// token): it is neither logged nor answered, unlike
			// net/http's own recovery, which prints it.
			s.log.Error("panic in handler", slog.String("route", r.Pattern))
			if !rw.wrote {
				writeProblem(rw, errf(500, CodeInternal, "Internal error", "the coordinator could not complete the request"))
			}
		}
		// Log the route pattern, never the path: it may carry a capability.
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.Int("status", rw.status), slog.Duration("elapsed", time.Since(start)))
	}()
	s.mux.ServeHTTP(rw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool // the status line is out
}

func (w *statusWriter) WriteHeader(code int) {
	w.status, w.wrote = code, true
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		writeProblem(w, errf(503, CodeUnavailable, "Not ready", "metadata database unavailable"))
		return
	}
	if err := s.cfg.Blobs.List(ctx, "readyz-probe/", func(blob.Info) error { return nil }); err != nil {
		writeProblem(w, errf(503, CodeUnavailable, "Not ready", "blob store unavailable"))
		return
	}
	if _, err := s.cfg.Queue.Stats(ctx, "readyz-probe"); err != nil {
		writeProblem(w, errf(503, CodeUnavailable, "Not ready", "delivery queue unavailable"))
		return
	}
	w.Write([]byte("ready\n"))
}

// HTTP2Config is the HTTP/2 configuration for the coordinator's listener:
// tus PATCH bodies are large streams, and Go's default 1 MiB receive
// window per stream and connection keeps a single upload far below what
// the TLS and disk paths sustain.
func HTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{MaxReceiveBufferPerStream: 8 << 20, MaxReceiveBufferPerConnection: 32 << 20}
}

// caller is an authenticated hospital.
type caller struct {
	Hospital Hospital
	CertFP   string
}

// hospital authenticates a hospital request: certificate identity, an
// active registry entry, and a source address inside its network ranges.
func (s *Server) hospital(h func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, fp, err := s.cfg.Identifier.Identify(r)
		if err != nil {
			writeProblem(w, err)
			return
		}
		hosp, err := s.cfg.Store.Hospital(r.Context(), id)
		if errors.Is(err, ErrNotFound) {
			writeProblem(w, errf(403, CodeForbidden, "Forbidden", "the calling hospital is not registered"))
			return
		}
		if err != nil {
			writeProblem(w, s.internal(err))
			return
		}
		if hosp.Status != StatusActive {
			writeProblem(w, errf(403, CodeSuspended, "Hospital suspended", "the calling hospital is suspended"))
			return
		}
		if !inNetworks(remoteIP(r), hosp.Networks) {
			writeProblem(w, errf(403, CodeOutsideNetwork, "Outside network ranges", "the request comes from outside the hospital's registered network ranges"))
			return
		}
		h(w, r, caller{Hospital: hosp, CertFP: fp})
	}
}

func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.cfg.AdminToken == "" || !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="phix-admin"`)
			writeProblem(w, errf(401, CodeUnauthenticated, "Unauthenticated", "a valid admin bearer token is required"))
			return
		}
		h(w, r)
	}
}

func (s *Server) internal(err error) error {
	// Driver text may quote SQL, paths or keys: log the kind only, and
	// keep everything out of the response.
	s.log.Error("internal error", slog.String("code", CodeInternal), slog.String("kind", ErrorKind(err)))
	s.metrics.failure(CodeInternal)
	return errf(500, CodeInternal, "Internal error", "the coordinator could not complete the request")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, MaxRequestBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(400, CodeBadRequest, "Invalid JSON", "the body is not a valid JSON document of the expected shape (at most 1 MiB)")
	}
	return nil
}

// newToken returns a random capability token and its stored hash.
func newToken() (string, string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("transfer: crypto/rand failed")
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	return tok, tokenHash(tok)
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("transfer: crypto/rand failed")
	}
	return "t" + hex.EncodeToString(b[:])
}

func (s *Server) audit(ctx context.Context, ev audit.Event) {
	if ev.Who.Org == "" {
		ev.Who.Org = s.cfg.ID
	}
	if _, err := s.cfg.Auditor.Append(ctx, ev); err != nil {
		s.log.Error("audit append failed", slog.String("kind", ErrorKind(err)))
	}
}

// PinStore exposes the registry's certificate pins to pki's verifier.
// Built with NewPinStore it remembers the pins it last read for each
// hospital and serves them when a later read fails (a busy or briefly
// unreachable database), for at most PinStaleFor: a handshake then does
// not fail for a reason that has nothing to do with the certificate.
// Suspension and removal are never served stale (a successful read that
// says so forgets the entry), and every request still checks the
// registry's status.
type PinStore struct {
	Store Store
	last  *sync.Map // hospital id -> pinEntry
}

// PinStaleFor bounds how old remembered pins may be when the database
// read fails.
const PinStaleFor = time.Minute

type pinEntry struct {
	pins []string
	at   time.Time
}

// NewPinStore returns a PinStore over st that serves recent pins when a
// read fails.
func NewPinStore(st Store) PinStore { return PinStore{Store: st, last: &sync.Map{}} }

// Pins implements pki.PinStore: pins of an active hospital only.
func (p PinStore) Pins(ctx context.Context, pr pki.Principal) ([]string, error) {
	if pr.Role != pki.RoleHospital {
		return nil, nil
	}
	h, err := p.Store.Hospital(ctx, pr.ID)
	if errors.Is(err, ErrNotFound) || (err == nil && h.Status != StatusActive) {
		if p.last != nil {
			p.last.Delete(pr.ID)
		}
		return nil, nil
	}
	if err != nil {
		if p.last != nil {
			if v, ok := p.last.Load(pr.ID); ok && time.Since(v.(pinEntry).at) < PinStaleFor {
				return v.(pinEntry).pins, nil
			}
		}
		return nil, err
	}
	if p.last != nil {
		p.last.Store(pr.ID, pinEntry{pins: h.Pins, at: time.Now()})
	}
	return h.Pins, nil
}

var _ pki.PinStore = PinStore{}
