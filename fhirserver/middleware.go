package fhirserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"phix/audit"
)

type ctxKey int

const principalKey ctxKey = 1

// PrincipalFrom returns the authenticated caller of a request's context.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey).(*Principal)
	return p
}

// statusWriter records the status and size of a response for the log line.
type statusWriter struct {
	http.ResponseWriter
	status  int
	bytes   int64
	code    Code   // the urn:phix:error code of an error answer
	subject string // the authenticated caller (a non-PHI name)
	cause   string // a 500's store error text (content-free by the store's contract)
	// beforeHeader runs once, just before the status line goes out: the
	// audit event of a write is durable before the client sees the answer.
	beforeHeader func(status int)
}

func (w *statusWriter) fire(status int) {
	if f := w.beforeHeader; f != nil {
		w.beforeHeader = nil
		f(status)
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.fire(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.fire(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware wraps the mux with, outermost first: the request log line,
// panic recovery, authentication and format negotiation.
func (s *Server) middleware(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := requestID()
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("X-Request-Id", rid)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The panic value may hold request data: it is not logged.
				s.log.Error("panic in handler", "request_id", rid)
				if sw.status == 0 {
					writeError(sw, errorf(CodeInternal, "internal error"))
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
				sw.fire(status)
			}
			// The route pattern, never the raw path or query: query values
			// and bodies are PHI.
			route := r.Pattern
			if route == "" {
				// Refused before routing (401, 406): name the route it would have taken.
				_, route = mux.Handler(r)
			}
			if route == "" {
				route = "(none)"
			}
			attrs := []slog.Attr{
				slog.String("request_id", rid),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Int64("bytes", sw.bytes),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			}
			if sw.code != "" {
				attrs = append(attrs, slog.String("error_code", string(sw.code)))
			}
			if sw.subject != "" {
				attrs = append(attrs, slog.String("subject", sw.subject))
			}
			if sw.cause != "" {
				attrs = append(attrs, slog.String("cause", sw.cause))
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		}()
		if !(r.URL.Path == BasePath+"/metadata" && (r.Method == http.MethodGet || r.Method == http.MethodHead)) {
			p, err := s.cfg.Auth.Authenticate(r)
			if err != nil || p == nil {
				if s.audit != nil {
					s.audit.securityAlert(r, rid, audit.AlertAuthFailure, nil)
				}
				writeError(sw, errorf(CodeUnauthorized, "a valid bearer token is required"))
				return
			}
			sw.subject = p.Subject
			// r is modified in place so r.Pattern, set by the mux, is visible to the log line.
			*r = *r.WithContext(context.WithValue(r.Context(), principalKey, p))
			*r = *s.enforceContext(r, p)
			// Separation of duties: the audit endpoints are the auditor's
			// (their handler checks the role again), clinical data is not.
			if isAuditPath(r.URL.Path) {
				if s.audit != nil {
					if r.URL.Path == "/audit" || strings.HasPrefix(r.URL.Path, "/audit/") {
						s.auditAPI.ServeHTTP(sw, r)
					} else {
						s.auditFHIR.ServeHTTP(sw, r)
					}
					return
				}
			} else if roleOf(p) != RoleClinician && !isReviewPath(r.URL.Path) {
				if s.audit != nil {
					s.audit.securityAlert(r, rid, audit.AlertPolicyViolation, p)
				}
				writeError(sw, errorf(CodeForbidden, "this token may read only the audit log"))
				return
			}
		}
		if err := negotiate(r); err != nil {
			writeError(sw, err)
			return
		}
		if s.audit != nil {
			*r = *r.WithContext(withAuditNote(r.Context()))
			sw.beforeHeader = func(status int) { s.audit.emit(r, rid, status, sw.Header()) }
		}
		mux.ServeHTTP(sw, r)
		s.afterRequest(r, rid)
	})
}

// negotiate refuses requests that ask only for a format other than JSON
// (_format=xml, an Accept of only XML: 406), or for a FHIR version other than
// R4 (a fhirVersion parameter: 406 PHI-6013).
func negotiate(r *http.Request) error {
	if f := r.URL.Query().Get("_format"); f != "" {
		mt, version := splitMediaType(f)
		switch mt {
		case "json", "application/json", "application/fhir+json", "application/json+fhir":
		default:
			return errorf(CodeNotAcceptable, "only JSON is supported (_format)")
		}
		if !isR4(version) {
			return errorf(CodeUnsupportedVersion, "only FHIR R4 (4.0) is supported")
		}
	}
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return nil
	}
	wrongVersion := false
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			mt, version := splitMediaType(part)
			ok := false
			switch mt {
			case "", "*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir", "text/json", "text/*":
				ok = true
			default:
				ok = strings.HasSuffix(mt, "+json")
			}
			if !ok {
				continue
			}
			if !isR4(version) {
				wrongVersion = true
				continue
			}
			return nil
		}
	}
	if wrongVersion {
		return errorf(CodeUnsupportedVersion, "only FHIR R4 (4.0) is supported")
	}
	return errorf(CodeNotAcceptable, "only JSON is supported (Accept)")
}

// splitMediaType returns a media type (lower case, without parameters) and
// its fhirVersion parameter.
func splitMediaType(s string) (mt, fhirVersion string) {
	parts := strings.Split(s, ";")
	mt = strings.ToLower(strings.TrimSpace(parts[0]))
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "fhirVersion") {
			fhirVersion = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return mt, fhirVersion
}

// isR4 accepts an absent fhirVersion and the R4 ones (4.0, 4.0.x).
func isR4(v string) bool { return v == "" || v == "4.0" || strings.HasPrefix(v, "4.0.") }

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sortStrings(s []string) []string {
	sort.Strings(s)
	return s
}
