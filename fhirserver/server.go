// Package fhirserver is phix's FHIR R4 (4.0.1) REST API: JSON only, mounted at
// /fhir/r4, over a store.Store. It implements read, vread, create, update,
// delete, the conditional variants, history, search, batch and transaction
// Bundles, $validate and the CapabilityStatement. docs/fhir-api.md describes
// what it does and its error codes.
package fhirserver

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"phix/audit"
	"phix/deid"
	"phix/errcode"
	"phix/store"
	"phix/store/reindex"
)

// BasePath is where the API is mounted.
const BasePath = "/fhir/r4"

// Defaults for Config's zero values.
const (
	DefaultMaxBodyBytes        = 32 << 20
	DefaultMaxDepth            = 64
	DefaultMaxBundleEntries    = 20000
	DefaultPageSize            = 50
	DefaultMaxPageSize         = 1000
	DefaultMaxConditionalMatch = 100
)

// Config configures a Server.
type Config struct {
	Store store.Store
	// Auth authenticates every request except GET /metadata. Required.
	Auth Authenticator
	// BaseURL is the absolute URL of the API (e.g. "http://127.0.0.1:8080/fhir/r4"),
	// used in fullUrl, Location and paging links. Empty: derived from each
	// request's Host.
	BaseURL string
	// Logger gets one line per request; nil discards.
	Logger *slog.Logger

	MaxBodyBytes     int64 // request body limit; default 32 MiB
	MaxDepth         int   // JSON nesting limit; default 64
	MaxBundleEntries int   // entries per batch/transaction; default 20,000 (never below 10,000)
	DefaultPageSize  int   // search/history page size when _count is absent; default 50
	MaxPageSize      int   // largest _count honoured; default 1000
	// MaxConditionalDelete is how many resources one conditional delete may
	// remove; more matches answer 412. Default 100; 1 allows single only.
	MaxConditionalDelete int

	// Audit, when set, receives one event per request (docs/fhir-api.md,
	// "Audit") and serves /audit/ and AuditEvent to the auditor role; its
	// Options.Authorizer should be AuditAuthorizer(Auth). AuditPseudonyms
	// must then be the same Pseudonymizer the log was opened with.
	Audit           *audit.Log
	AuditPseudonyms *audit.Pseudonymizer

	// DeidKeys, when set, enables $de-identify (docs/fhir-api.md) with
	// these keys; DeidOptions tunes the engines.
	DeidKeys    deid.Keys
	DeidOptions deid.Options

	// Protector, when set, seals every stored resource (field encryption,
	// blind indexes, HMAC) and opens what is read (docs/phi-isolation.md).
	// Nil stores plaintext: only for the benchmarks' "off" baseline.
	Protector Protector
	// Eraser enables Patient/[id]/$erase (needs Protector).
	Eraser KeyEraser
	// Lockout applies the PHI-60xx lockouts (900 s after PHI-6004/6005);
	// nil means an in-memory one.
	Lockout *errcode.Lockout
	// Signing, when set, enables $sign/$verify and a signed Provenance for
	// every create, update, delete and transaction (NewSigning; docs/fhir-api.md).
	Signing *Signing
	// Reindex, when set, enables custom SearchParameters and $reindex
	// (docs/reindex.md). It must be a Manager opened on Store; the server
	// then writes through Reindex.Store().
	Reindex *reindex.Manager
	// JobRetention is how long finished background jobs ($reindex,
	// $encrypt) stay in the store's job table, their status readable,
	// before they are purged (docs/reindex.md, "Job retention and
	// incremental refresh"). 0 keeps the Manager's setting
	// (reindex.Options.Retention, default 30 days); negative keeps them
	// forever. Purging runs in Reindex; without it no job is purged.
	JobRetention time.Duration
	// Enforcement, when set, enforces SMART scopes, policy and consent on
	// every interaction (docs/enforcement.md). Nil serves every
	// authenticated clinical caller (the behaviour before issue #6).
	Enforcement *Enforcement
}

// Server is the FHIR REST API. It is an http.Handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	mux     *http.ServeMux // the routes without the middleware, for Bundle GET entries

	audit     *auditor     // nil: no audit log
	auditAPI  http.Handler // audit.Handler
	auditFHIR http.Handler // the AuditEvent resource
	deid      *deid.Operation

	protect  Protector        // nil: protection off
	raw      store.Store      // cfg.Store as given (sealed records)
	lockout  *errcode.Lockout // PHI-60xx lockouts
	jobs     *encryptJobs     // $encrypt jobs
	jobDocs  jobDocs          // where $encrypt jobs persist (nil: memory only)
	instance string           // this process, in job leases
	verified *verifiedCache   // bodies whose HMAC verified (verified.go)
	enf      *enforcer        // nil: enforcement off

	capMu    sync.Mutex
	capCache map[string][]byte // CapabilityStatement per base URL
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("fhirserver: Config.Store is required")
	}
	if cfg.Auth == nil {
		return nil, errors.New("fhirserver: Config.Auth is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.MaxBundleEntries <= 0 {
		cfg.MaxBundleEntries = DefaultMaxBundleEntries
	}
	if cfg.MaxBundleEntries < 10000 {
		return nil, errors.New("fhirserver: MaxBundleEntries must be at least 10000")
	}
	if cfg.DefaultPageSize <= 0 {
		cfg.DefaultPageSize = DefaultPageSize
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	if cfg.DefaultPageSize > cfg.MaxPageSize {
		cfg.DefaultPageSize = cfg.MaxPageSize
	}
	if cfg.MaxConditionalDelete <= 0 {
		cfg.MaxConditionalDelete = DefaultMaxConditionalMatch
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Reindex != nil {
		cfg.Store = cfg.Reindex.Store()
		if cfg.JobRetention != 0 {
			cfg.Reindex.SetRetention(cfg.JobRetention)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if (cfg.Audit == nil) != (cfg.AuditPseudonyms == nil) {
		return nil, errors.New("fhirserver: Config.Audit and Config.AuditPseudonyms go together")
	}
	if cfg.Audit != nil {
		s.audit = &auditor{log: cfg.Audit, ps: cfg.AuditPseudonyms, s: s}
		s.auditAPI = audit.Handler(cfg.Audit)
		s.auditFHIR = cfg.Audit.AuditEventHandler()
	}
	if cfg.DeidKeys != nil {
		op, err := deid.NewOperation(cfg.DeidKeys, cfg.DeidOptions)
		if err != nil {
			return nil, errors.New("fhirserver: $de-identify cannot start")
		}
		s.deid = op
	}
	s.raw, s.lockout, s.jobs, s.verified = cfg.Store, cfg.Lockout, newEncryptJobs(), newVerifiedCache()
	s.instance = newID()
	if jd, ok := cfg.Store.(jobDocs); ok {
		s.jobDocs = jd
	} else if cfg.Reindex != nil {
		s.jobDocs = cfg.Reindex.Reindexer()
	}
	if s.lockout == nil {
		s.lockout = errcode.NewLockout()
	}
	if cfg.Protector != nil {
		s.protect = cfg.Protector
		s.cfg.Store = &protectedStore{Store: cfg.Store, s: s}
		if cfg.Reindex != nil {
			// Stored bodies are sealed: jobs must open them to rebuild
			// blind entries (reindexEntries).
			cfg.Reindex.SetExtractor(s.reindexEntries)
		}
	}
	if cfg.Enforcement != nil {
		e, err := newEnforcer(s, *cfg.Enforcement, s.cfg.Store)
		if err != nil {
			return nil, err
		}
		s.enf = e
		s.cfg.Store = &enforcedStore{Store: s.cfg.Store, e: e}
	}
	s.handler = s.routes()
	if s.protect != nil && s.jobDocs != nil {
		s.resumeEncryptJobsLater()
	}
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// routes builds the mux. Patterns carry no method: each handler dispatches on
// the method itself so an unsupported one gets a 405 OperationOutcome rather
// than ServeMux's plain-text answer.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	b := BasePath
	mux.HandleFunc(b+"/metadata", s.methods(map[string]handlerFunc{"GET": s.handleMetadata}))
	mux.HandleFunc(b, s.methods(map[string]handlerFunc{"POST": s.handleBundle, "GET": s.handleSystemSearch}))
	mux.HandleFunc(b+"/{$}", s.methods(map[string]handlerFunc{"POST": s.handleBundle, "GET": s.handleSystemSearch}))
	mux.HandleFunc(b+"/_history", s.methods(map[string]handlerFunc{"GET": s.handleHistory}))
	mux.HandleFunc(b+"/_search", s.methods(map[string]handlerFunc{"POST": s.handleSystemSearch}))
	mux.HandleFunc(b+"/{type}", s.methods(map[string]handlerFunc{
		"GET": s.handleSearch, "POST": s.handleCreate, "PUT": s.handleConditionalUpdate, "DELETE": s.handleConditionalDelete,
		"PATCH": s.handleConditionalPatch,
	}))
	mux.HandleFunc(b+"/{type}/_search", s.methods(map[string]handlerFunc{"POST": s.handleSearch, "GET": s.handleSearch}))
	mux.HandleFunc(b+"/{type}/_history", s.methods(map[string]handlerFunc{"GET": s.handleHistory}))
	mux.HandleFunc(b+"/{type}/$validate", s.methods(map[string]handlerFunc{"POST": s.handleValidate}))
	mux.HandleFunc(b+"/{type}/{id}", s.methods(map[string]handlerFunc{
		"GET": s.handleRead, "PUT": s.handleUpdate, "DELETE": s.handleDelete, "PATCH": s.handlePatch,
	}))
	mux.HandleFunc(b+"/$de-identify", s.methods(map[string]handlerFunc{"POST": s.handleDeidentify}))
	mux.HandleFunc(b+"/{type}/{id}/$de-identify", s.methods(map[string]handlerFunc{"POST": s.handleDeidentify}))
	s.protectRoutes(mux)
	mux.HandleFunc(b+"/{type}/{id}/$everything", s.methods(map[string]handlerFunc{"GET": s.handleEverything}))
	s.enforceRoutes(mux)
	mux.HandleFunc(b+"/{type}/{id}/$validate", s.methods(map[string]handlerFunc{"POST": s.handleValidate}))
	mux.HandleFunc(b+"/{type}/{id}/_history", s.methods(map[string]handlerFunc{"GET": s.handleHistory}))
	mux.HandleFunc(b+"/{type}/{id}/_history/{vid}", s.methods(map[string]handlerFunc{"GET": s.handleVRead}))
	mux.HandleFunc(b+"/{type}/{id}/$sign", s.methods(map[string]handlerFunc{"POST": s.handleSign}))
	mux.HandleFunc(b+"/{type}/{id}/$verify", s.methods(map[string]handlerFunc{"POST": s.handleVerify, "GET": s.handleVerify}))
	mux.HandleFunc(b+"/{type}/{id}/_history/{vid}/$verify", s.methods(map[string]handlerFunc{"POST": s.handleVerify, "GET": s.handleVerify}))
	// Custom SearchParameters: fhirserver/reindex.go.
	mux.HandleFunc(b+"/$reindex", s.methods(map[string]handlerFunc{"POST": s.handleReindex}))
	mux.HandleFunc(b+"/$reindex-status", s.methods(map[string]handlerFunc{"GET": s.handleReindexStatus}))
	mux.HandleFunc(b+"/{type}/$reindex", s.methods(map[string]handlerFunc{"POST": s.handleReindex}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(CodeNotFound, "no such endpoint"))
	})
	s.mux = mux
	return s.middleware(mux)
}

// handlerFunc is a route handler that returns its error for the caller to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// methods dispatches on the HTTP method (HEAD goes to GET) and renders errors.
func (s *Server) methods(m map[string]handlerFunc) http.HandlerFunc {
	allow := make([]string, 0, len(m)+1)
	for k := range m {
		allow = append(allow, k)
		if k == "GET" {
			allow = append(allow, "HEAD")
		}
	}
	allowHeader := strings.Join(sortStrings(allow), ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		h, ok := m[method]
		if !ok {
			w.Header().Set("Allow", allowHeader)
			writeError(w, errorf(CodeMethodNotAllowed, "method not allowed on this endpoint"))
			return
		}
		if err := s.checkLockout(r); err != nil {
			writeError(w, err)
			return
		}
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	}
}

// now is the server clock, truncated to microseconds (PostgreSQL's precision)
// so meta.lastUpdated and the stored time always agree.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
