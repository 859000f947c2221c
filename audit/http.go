package audit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// Authorizer decides whether a request may read the audit APIs (the server
// plugs in its bearer-token check: auditor and security-admin roles). It
// returns nil to allow; an error wrapping ErrForbidden gives 403, any other
// error 401.
type Authorizer func(r *http.Request) error

// ErrForbidden: authenticated, but not allowed to read the audit log.
var ErrForbidden = errors.New("audit: forbidden")

// errNoAuthorizer refuses every request when no Authorizer was configured.
var errNoAuthorizer = errors.New("audit: no authorizer configured")

// Stable error codes of the /audit API (problem+json "code").
const (
	CodeUnauthorized     = "PHI-6401-audit-unauthorized"
	CodeForbidden        = "PHI-6403-audit-forbidden"
	CodeBadCursor        = "PHI-6410-audit-bad-cursor"
	CodeBadLimit         = "PHI-6411-audit-bad-limit"
	CodeBadParameter     = "PHI-6412-audit-bad-parameter"
	CodeOutOfRange       = "PHI-6413-audit-out-of-range"
	CodeNotFound         = "PHI-6404-audit-not-found"
	CodeMethodNotAllowed = "PHI-6405-audit-read-only"
	CodeInternal         = "PHI-6500-audit-internal"
)

// Limits of the events feed.
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = 1000
)

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
}

func writeProblem(w http.ResponseWriter, status int, code, title string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "urn:phix:error:" + code, Title: title, Status: status, Code: code})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// authorize runs the Authorizer; false means a response was written.
func (l *Log) authorize(w http.ResponseWriter, r *http.Request, fhir bool) bool {
	err := errNoAuthorizer
	if l.opts.Authorizer != nil {
		err = l.opts.Authorizer(r)
	}
	if err == nil {
		return true
	}
	status, code, title := http.StatusUnauthorized, CodeUnauthorized, "authentication required"
	if errors.Is(err, ErrForbidden) {
		status, code, title = http.StatusForbidden, CodeForbidden, "not allowed to read the audit log"
	}
	if fhir {
		writeOutcome(w, status, "security", code, title)
	} else {
		writeProblem(w, status, code, title)
	}
	return false
}

// Handler serves the audit API of l:
//
//	GET /audit/events?after=CURSOR&limit=N   the append-only feed (each event with its index)
//	GET /audit/checkpoint                     the latest signed checkpoint (text/plain note)
//	GET /audit/proof/inclusion?index=I&size=S an inclusion proof (size defaults to the latest checkpoint)
//	GET /audit/proof/consistency?from=A&to=B  a consistency proof
//
// Every request passes Options.Authorizer first.
func Handler(l *Log) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/audit/events", l.serveEvents)
	mux.HandleFunc("/audit/checkpoint", l.serveCheckpoint)
	mux.HandleFunc("/audit/proof/inclusion", l.serveInclusion)
	mux.HandleFunc("/audit/proof/consistency", l.serveConsistency)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.authorize(w, r, false) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "the audit log is read-only over HTTP")
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			writeProblem(w, http.StatusNotFound, CodeNotFound, "no such audit endpoint")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// parseIndex reads a non-negative decimal index; ok is false when malformed.
func parseIndex(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// FeedEvent is one entry of /audit/events.
type FeedEvent struct {
	Index    int64           `json:"index"`
	LeafHash tlog.Hash       `json:"leaf_hash"`
	Pruned   bool            `json:"pruned,omitempty"`
	Event    json.RawMessage `json:"event,omitempty"`
}

// Feed is the /audit/events response. Next is the cursor for the next page.
type Feed struct {
	Events []FeedEvent `json:"events"`
	Next   string      `json:"next"`
}

func (l *Log) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := int64(-1)
	if s := q.Get("after"); s != "" { // an empty after means the start
		n, ok := parseIndex(s)
		if !ok {
			writeProblem(w, http.StatusBadRequest, CodeBadCursor, "after must be a cursor returned as next (a leaf index)")
			return
		}
		after = n
	}
	limit := DefaultEventsLimit
	if s := q.Get("limit"); s != "" || q.Has("limit") {
		n, ok := parseIndex(s)
		if !ok || n == 0 {
			writeProblem(w, http.StatusBadRequest, CodeBadLimit, "limit must be a positive integer")
			return
		}
		if n > MaxEventsLimit {
			writeProblem(w, http.StatusBadRequest, CodeBadLimit, "limit exceeds the maximum of 1000")
			return
		}
		limit = int(n)
	}
	feed, err := l.Feed(r.Context(), after, limit)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, CodeInternal, "cannot read the audit log")
		return
	}
	writeJSON(w, feed)
}

// Feed returns up to limit events after the cursor index (-1 for the start).
func (l *Log) Feed(ctx context.Context, after int64, limit int) (*Feed, error) {
	recs, err := l.b.Events(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	feed := &Feed{Events: make([]FeedEvent, 0, len(recs)), Next: strconv.FormatInt(max(after, -1), 10)}
	var missing []int64
	for _, rec := range recs {
		fe := FeedEvent{Index: rec.Index}
		if rec.Body == nil {
			fe.Pruned = true
			missing = append(missing, tlog.StoredHashIndex(0, rec.Index))
		} else {
			fe.LeafHash = l.th.leaf(rec.Body)
			fe.Event = rec.Body
		}
		feed.Events = append(feed.Events, fe)
		feed.Next = strconv.FormatInt(rec.Index, 10)
	}
	if len(missing) > 0 {
		hs, err := l.b.ReadHashes(ctx, missing)
		if err != nil {
			return nil, err
		}
		j := 0
		for i := range feed.Events {
			if feed.Events[i].Pruned {
				feed.Events[i].LeafHash = hs[j]
				j++
			}
		}
	}
	if after < 0 && len(recs) == 0 {
		feed.Next = ""
	}
	return feed, nil
}

func (l *Log) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := l.b.LatestCheckpoint(r.Context())
	if errors.Is(err, ErrNotFound) {
		writeProblem(w, http.StatusNotFound, CodeNotFound, "no checkpoint yet")
		return
	}
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, CodeInternal, "cannot read the audit log")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(cp.Note)
}

func (l *Log) serveInclusion(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	index, ok := parseIndex(q.Get("index"))
	if !ok {
		writeProblem(w, http.StatusBadRequest, CodeBadParameter, "index must be a leaf index")
		return
	}
	var size int64
	if q.Has("size") {
		if size, ok = parseIndex(q.Get("size")); !ok || size == 0 {
			writeProblem(w, http.StatusBadRequest, CodeBadParameter, "size must be a positive tree size")
			return
		}
	}
	p, err := l.InclusionProof(r.Context(), index, size)
	if errors.Is(err, ErrOutOfRange) {
		writeProblem(w, http.StatusBadRequest, CodeOutOfRange, "index must be below size, and size at most the tree size")
		return
	}
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, CodeInternal, "cannot build the proof")
		return
	}
	writeJSON(w, p)
}

func (l *Log) serveConsistency(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, ok1 := parseIndex(q.Get("from"))
	to, ok2 := parseIndex(q.Get("to"))
	if !ok1 || !ok2 {
		writeProblem(w, http.StatusBadRequest, CodeBadParameter, "from and to must be tree sizes")
		return
	}
	p, err := l.ConsistencyProof(r.Context(), from, to)
	if errors.Is(err, ErrOutOfRange) {
		writeProblem(w, http.StatusBadRequest, CodeOutOfRange, "need 0 < from <= to <= tree size")
		return
	}
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, CodeInternal, "cannot build the proof")
		return
	}
	writeJSON(w, p)
}
