package fhirserver

import (
	"context"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"phix/fhir"
	"phix/fhir/patch"
	"phix/store"
)

// bundleEntry is one entry of a batch or transaction being processed.
type bundleEntry struct {
	index       int
	method      string
	url         entryURL
	rawURL      string
	fullURL     string
	res         *fhir.Resource
	ifNoneExist string
	ifMatch     int64

	patch         patch.Patch // a PATCH entry's parsed patch (patch.go)
	fhirpathPatch bool

	newID    string        // the id a create gets, fixed once so retries agree
	id       string        // target id of a POST or PUT
	existing *store.Record // a conditional create's match

	err  error     // the entry's failure (batch) or the Bundle's (transaction)
	resp entryJSON // the response entry
}

// phase orders entries the way R4 3.1.0.11.2 requires: DELETE, POST,
// PUT/PATCH, then GET/HEAD.
func (e *bundleEntry) phase() int {
	switch e.method {
	case http.MethodDelete:
		return 0
	case http.MethodPost:
		return 1
	case http.MethodPut, http.MethodPatch:
		return 2
	}
	return 3
}

func (s *Server) handleBundle(w http.ResponseWriter, r *http.Request) error {
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	res, err := s.parseResource(data)
	if err != nil {
		return err
	}
	if res.Type != "Bundle" {
		return errorf(CodeInvalidBundle, "POST to the base URL takes a batch or transaction Bundle")
	}
	btype, _ := res.Object["type"].(string)
	if btype != "batch" && btype != "transaction" {
		return errorf(CodeInvalidBundle, "Bundle.type must be batch or transaction")
	}
	raw, _ := res.Object["entry"].([]any)
	if _, ok := res.Object["entry"]; ok && raw == nil {
		return errorf(CodeInvalidBundle, "Bundle.entry must be an array")
	}
	if len(raw) > s.cfg.MaxBundleEntries {
		return errorf(CodeTooManyEntries, "the Bundle has more entries than the server accepts")
	}
	if err := validateBundleShell(res, raw); err != nil {
		return err
	}
	base := s.baseURL(r)
	entries := parseEntries(raw, func(i int, v any) *bundleEntry { return s.parseEntry(i, v, base) })
	pref := parsePrefer(r)
	noteBundle(r.Context(), btype, len(raw))
	if btype == "transaction" {
		return s.transaction(w, r, entries, pref)
	}
	return s.batch(w, r, entries, pref)
}

// parseEntries parses and validates a Bundle's entries. Validation (structure
// and FHIRPath invariants) is most of a large transaction's CPU and each entry
// is independent of the others, so big Bundles spread it over the cores; the
// store work that follows stays in one transaction, in the spec's order.
func parseEntries(raw []any, parse func(int, any) *bundleEntry) []*bundleEntry {
	entries := make([]*bundleEntry, len(raw))
	workers := min(runtime.GOMAXPROCS(0), len(raw)/parallelEntries)
	if workers < 2 {
		for i, v := range raw {
			entries[i] = parse(i, v)
		}
		return entries
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(raw) {
					return
				}
				entries[i] = parse(i, raw[i])
			}
		})
	}
	wg.Wait()
	return entries
}

// parallelEntries is the number of entries per worker below which a Bundle is
// parsed on the calling goroutine: smaller ones finish before a worker starts.
const parallelEntries = 16

// validateBundleShell validates the Bundle itself, its entries' fullUrl,
// request and the like, without the entries' resources (each is validated on
// its own, so a batch can fail one entry only).
func validateBundleShell(res *fhir.Resource, raw []any) error {
	shell := make(map[string]any, len(res.Object))
	for k, v := range res.Object {
		shell[k] = v
	}
	entries := make([]any, len(raw))
	for i, v := range raw {
		em, ok := v.(map[string]any)
		if !ok {
			entries[i] = v
			continue
		}
		c := make(map[string]any, len(em))
		for k, x := range em {
			if k != "resource" {
				c[k] = x
			}
		}
		entries[i] = c
	}
	if len(raw) > 0 {
		shell["entry"] = entries
	}
	if issues := fhir.Validate(&fhir.Resource{Type: res.Type, ID: res.ID, Object: shell}); hasErrors(issues) {
		return validationError(issues)
	}
	return nil
}

// parseEntry reads the structure of one entry; a problem is recorded on it.
func (s *Server) parseEntry(i int, v any, base string) *bundleEntry {
	e := &bundleEntry{index: i, newID: newID()}
	obj, ok := v.(map[string]any)
	if !ok {
		e.err = errorf(CodeInvalidBundle, "entry must be an object")
		return e
	}
	e.fullURL, _ = obj["fullUrl"].(string)
	req, ok := obj["request"].(map[string]any)
	if !ok {
		e.err = errorf(CodeInvalidBundle, "entry.request is required")
		return e
	}
	e.method, _ = req["method"].(string)
	e.rawURL, _ = req["url"].(string)
	e.ifNoneExist, _ = req["ifNoneExist"].(string)
	switch e.method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
	default:
		e.err = errorf(CodeInvalidBundle, "entry.request.method must be GET, HEAD, POST, PUT, DELETE or PATCH")
		return e
	}
	if e.rawURL == "" {
		e.err = errorf(CodeInvalidBundle, "entry.request.url is required")
		return e
	}
	if im, _ := req["ifMatch"].(string); im != "" {
		v, err := parseETag(im)
		if err != nil {
			e.err = err
			return e
		}
		e.ifMatch = v
	}
	u, err := parseEntryURL(e.rawURL, base)
	if err != nil {
		e.err = err
		return e
	}
	e.url = u
	switch e.method {
	case http.MethodPatch:
		e.err = s.parsePatchEntry(e, obj)
		return e
	case http.MethodPost, http.MethodPut:
		if u.Type == "" || u.Op != "" || u.VID != "" || (e.method == http.MethodPost && (u.ID != "" || u.HasQuery)) ||
			(e.method == http.MethodPut && u.ID == "" && !u.HasQuery) || (e.method == http.MethodPut && u.ID != "" && u.HasQuery) {
			e.err = errorf(CodeInvalidBundle, "entry.request.url does not fit the method")
			return e
		}
		ro, ok := obj["resource"].(map[string]any)
		if !ok {
			e.err = errorf(CodeInvalidBundle, "entry.resource is required for POST and PUT")
			return e
		}
		rt, _ := ro["resourceType"].(string)
		id, _ := ro["id"].(string)
		if rt != u.Type {
			e.err = mismatch("entry.resource.resourceType does not match entry.request.url", "resourceType")
			return e
		}
		e.res = &fhir.Resource{Type: rt, ID: id, Object: ro}
		if e.method == http.MethodPut {
			if u.ID != "" && id != u.ID {
				e.err = mismatch("entry.resource.id must equal the id in entry.request.url", "id")
				return e
			}
			if id != "" && !validID(id) {
				e.err = errorf(CodeInvalidID, "invalid id in entry.resource")
				return e
			}
		}
		// Entries are parsed before any request context is at hand; the
		// invariant evaluation is bounded by its own limits.
		if err := validate(context.Background(), e.res); err != nil {
			e.err = err
			return e
		}
	case http.MethodDelete:
		if u.Type == "" || u.Op != "" || u.VID != "" || (u.ID == "" && !u.HasQuery) {
			e.err = errorf(CodeInvalidBundle, "entry.request.url does not fit the method")
			return e
		}
	}
	return e
}

// entryError puts the entry's position first in each issue's expressions.
func entryError(e *bundleEntry, err error) *Error {
	ae := asError(err)
	out := &Error{Status: ae.Status, Issues: make([]Issue, len(ae.Issues))}
	loc := "Bundle.entry[" + strconv.Itoa(e.index) + "]"
	for i, is := range ae.Issues {
		is.Expression = append([]string{loc}, is.Expression...)
		out.Issues[i] = is
	}
	return out
}

// plan assigns the target id of every POST and PUT (resolving conditional
// creates and updates), maps fullUrls to them, and rewrites references.
// Rewrites are recorded in undo so a retried transaction starts from the
// original references.
func (s *Server) plan(ctx context.Context, rd store.Reader, entries []*bundleEntry, base string, failFast bool, undo *[]func()) error {
	refs := map[string]string{} // fullUrl -> "Type/id"
	seen := map[string]int{}
	for _, e := range entries {
		if e.err != nil {
			if failFast {
				return entryError(e, e.err)
			}
			continue
		}
		switch e.method {
		case http.MethodPost:
			if e.ifNoneExist != "" {
				recs, err := s.matchCondition(ctx, rd, e.url.Type, e.ifNoneExist, 1)
				if err != nil {
					e.err = err
					break
				}
				if len(recs) == 1 {
					e.existing, e.id = recs[0], recs[0].ID
				}
			}
			if e.id == "" {
				e.id = e.newID
			}
		case http.MethodPut:
			e.id = e.url.ID
			if e.url.HasQuery {
				recs, err := s.matchCondition(ctx, rd, e.url.Type, e.url.Query, 1)
				if err != nil {
					e.err = err
					break
				}
				switch {
				case len(recs) == 1 && e.res.ID != "" && e.res.ID != recs[0].ID:
					e.err = mismatch("the entry's id differs from the matched resource's", "id")
				case len(recs) == 1:
					e.id = recs[0].ID
				case e.res.ID != "":
					e.id = e.res.ID
				default:
					e.id = e.newID
				}
			}
		case http.MethodDelete:
			e.id = e.url.ID
		case http.MethodPatch:
			e.err = s.planPatch(ctx, rd, e)
		}
		if e.err != nil {
			if failFast {
				return entryError(e, e.err)
			}
			continue
		}
		if e.id != "" && e.method != http.MethodGet && e.method != http.MethodHead {
			key := e.url.Type + "/" + e.id
			// A conditional create that matched writes nothing, so it cannot clash.
			if _, dup := seen[key]; dup && failFast && e.existing == nil {
				return entryError(e, errorf(CodeInvalidBundle, "two entries of a transaction change the same resource"))
			}
			if e.existing == nil {
				seen[key] = e.index
			}
			if e.fullURL != "" && e.method != http.MethodDelete {
				refs[e.fullURL] = key
			}
		}
	}
	// Rewrite references in every resource to write.
	cond := map[string]string{}
	for _, e := range entries {
		if e.err != nil || e.res == nil {
			continue
		}
		err := rewriteRefs(e.res.Object, undo, func(ref string) (string, error) {
			if to, ok := refs[ref]; ok {
				return to, nil
			}
			if strings.HasPrefix(ref, "urn:uuid:") || strings.HasPrefix(ref, "urn:oid:") {
				return "", errorf(CodeInvalidReference, "a urn: reference names no entry of the Bundle")
			}
			if base != "" && strings.HasPrefix(ref, base+"/") {
				return ref[len(base)+1:], nil
			}
			if typ, query, ok := parseConditionalRef(ref); ok {
				if to, ok := cond[ref]; ok {
					return to, nil
				}
				recs, err := s.matchCondition(ctx, rd, typ, query, 1)
				if err != nil {
					if ae := asError(err); ae.Code() == CodeMultipleMatches {
						return "", errorf(CodeMultipleMatches, "a conditional reference matched more than one resource")
					}
					return "", err
				}
				if len(recs) == 0 {
					return "", errorf(CodeInvalidReference, "a conditional reference matched no resource")
				}
				to := typ + "/" + recs[0].ID
				cond[ref] = to
				return to, nil
			}
			return ref, nil
		})
		if err != nil {
			e.err = err
			if failFast {
				return entryError(e, err)
			}
		}
	}
	return nil
}

// rewriteRefs replaces every Reference.reference string in v via fn. It
// rewrites in place: callers own the tree.
func rewriteRefs(v any, undo *[]func(), fn func(string) (string, error)) error {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if k == "reference" {
				if ref, ok := x.(string); ok {
					to, err := fn(ref)
					if err != nil {
						return err
					}
					if to != ref {
						t[k] = to
						if undo != nil {
							*undo = append(*undo, func() { t[k] = ref })
						}
					}
					continue
				}
			}
			if err := rewriteRefs(x, undo, fn); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range t {
			if err := rewriteRefs(x, undo, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// execute performs one write entry inside tx and fills its response.
func (s *Server) execute(ctx context.Context, tx store.Tx, e *bundleEntry, pref prefer, base string) error {
	var out *writeResult
	var err error
	switch e.method {
	case http.MethodDelete:
		if e.url.ID != "" {
			out, err = s.remove(ctx, tx, e.url.Type, e.url.ID, e.ifMatch)
		} else {
			var recs []*store.Record
			recs, err = s.matchCondition(ctx, tx, e.url.Type, e.url.Query, s.cfg.MaxConditionalDelete)
			out = &writeResult{status: http.StatusNoContent}
			for _, m := range recs {
				if err != nil {
					break
				}
				_, err = s.remove(ctx, tx, e.url.Type, m.ID, 0)
			}
		}
	case http.MethodPost:
		if e.existing != nil {
			var rec *store.Record
			rec, err = s.plain(ctx, e.existing)
			out = &writeResult{status: http.StatusOK, rec: rec}
		} else {
			out, err = s.create(ctx, tx, cloneResource(e.res), e.id)
		}
	case http.MethodPut:
		out, err = s.update(ctx, tx, cloneResource(e.res), e.id, e.ifMatch)
	case http.MethodPatch:
		out, err = s.patchOne(ctx, tx, e.url.Type, e.id, e.patch, e.fhirpathPatch, e.ifMatch)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	e.resp = entryJSON{Response: &responseJSON{Status: statusLine(out.status)}}
	if rec := out.rec; rec != nil {
		if !rec.Deleted {
			e.resp.FullURL = fullURL(base, rec)
			e.resp.Response.Location = rec.Type + "/" + rec.ID + "/_history/" + strconv.FormatInt(rec.Version, 10)
		}
		e.resp.Response.Etag = etag(rec.Version)
		e.resp.Response.LastModified = httpTime(rec.LastUpdated)
		switch {
		case rec.Deleted:
		case pref.ret == "representation":
			e.resp.Resource = rec.Body
		case pref.ret == "OperationOutcome":
			e.resp.Response.Outcome = outcomeJSON([]Issue{{Severity: "information", Type: "informational", Diagnostics: "operation completed"}})
		}
	}
	return nil
}

// ordered returns the entries in processing order (stable within a phase).
func ordered(entries []*bundleEntry) []*bundleEntry {
	out := append([]*bundleEntry(nil), entries...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].phase() < out[j].phase() })
	return out
}

// transaction processes entries all-or-nothing in one store transaction.
func (s *Server) transaction(w http.ResponseWriter, r *http.Request, entries []*bundleEntry, pref prefer) error {
	ctx := r.Context()
	base := s.baseURL(r)
	// A search entry whose query is invalid fails the transaction up front
	// (the search itself runs after the commit).
	for _, e := range entries {
		if e.err == nil && e.phase() == 3 && e.url.Type != "" && e.url.ID == "" && e.url.Op == "" {
			values, err := url.ParseQuery(e.url.Query)
			if err != nil {
				return entryError(e, errorf(CodeInvalidSearch, "malformed query string"))
			}
			for _, k := range serverParams {
				values.Del(k)
			}
			if _, _, err := s.parseQuery(e.url.Type, values, pref.strict); err != nil {
				return entryError(e, err)
			}
		}
	}
	var undo []func()
	err := s.runTx(ctx, func(tx store.Tx) error {
		// A retry starts from the Bundle as received.
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		undo = undo[:0]
		for _, e := range entries {
			e.existing, e.id = nil, ""
		}
		if err := s.plan(ctx, tx, entries, base, true, &undo); err != nil {
			return err
		}
		for _, e := range ordered(entries) {
			if e.phase() == 3 {
				// Reads of one resource run in the transaction, after its
				// writes: a missing resource fails the whole Bundle.
				if isInstanceRead(e) {
					if err := s.readEntry(ctx, tx, e, base); err != nil {
						return entryError(e, err)
					}
				}
				continue
			}
			if err := s.execute(ctx, tx, e, pref, base); err != nil {
				if isConflict(err) {
					return err
				}
				return entryError(e, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Searches and other GETs run after the commit, so they see the
	// transaction's writes.
	for _, e := range entries {
		if e.phase() == 3 && !isInstanceRead(e) {
			s.subRequest(r, e)
		}
	}
	return s.writeBundleResponse(w, "transaction-response", entries)
}

// isInstanceRead reports a GET/HEAD of one resource or one version.
func isInstanceRead(e *bundleEntry) bool {
	return e.phase() == 3 && e.url.Type != "" && e.url.ID != "" && e.url.Op == "" && !e.url.HasQuery
}

// readEntry serves a read or vread entry inside tx.
func (s *Server) readEntry(ctx context.Context, tx store.Tx, e *bundleEntry, base string) error {
	var rec *store.Record
	var err error
	if e.url.VID != "" {
		v, perr := strconv.ParseInt(e.url.VID, 10, 64)
		if perr != nil || v < 1 {
			return errorf(CodeNotFound, "no such version")
		}
		rec, err = tx.VRead(ctx, e.url.Type, e.url.ID, v)
		if err == nil && rec.Deleted {
			err = store.ErrDeleted
		}
	} else {
		rec, err = tx.Read(ctx, e.url.Type, e.url.ID)
	}
	if err == nil {
		rec, err = s.plain(ctx, rec)
	}
	if err == nil {
		rec, err = s.enforceRecord(ctx, rec)
	}
	if err != nil {
		return storeError(err)
	}
	e.resp = entryJSON{FullURL: fullURL(base, rec), Response: &responseJSON{
		Status: statusLine(http.StatusOK), Etag: etag(rec.Version), LastModified: httpTime(rec.LastUpdated),
	}}
	if e.method == http.MethodGet {
		e.resp.Resource = rec.Body
	}
	return nil
}

// batch processes every entry independently, each write in its own
// transaction; a failing entry gets its OperationOutcome and the others go on.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, entries []*bundleEntry, pref prefer) error {
	ctx := r.Context()
	base := s.baseURL(r)
	if err := s.plan(ctx, s.sealedReader(), entries, base, false, nil); err != nil {
		return err
	}
	for _, e := range ordered(entries) {
		if e.err != nil {
			continue
		}
		if e.phase() == 3 {
			s.subRequest(r, e)
			continue
		}
		err := s.runTx(ctx, func(tx store.Tx) error { return s.execute(ctx, tx, e, pref, base) })
		if err != nil {
			e.err = err
		}
	}
	return s.writeBundleResponse(w, "batch-response", entries)
}

func (s *Server) writeBundleResponse(w http.ResponseWriter, typ string, entries []*bundleEntry) error {
	b := newBundle(typ)
	b.Entry = make([]entryJSON, len(entries))
	for i, e := range entries {
		if e.err != nil {
			ae := asError(e.err)
			b.Entry[i] = entryJSON{Response: &responseJSON{Status: statusLine(ae.Status), Outcome: outcomeJSON(ae.Issues)}}
			continue
		}
		b.Entry[i] = e.resp
	}
	return writeBundle(w, http.StatusOK, b)
}

// subRequest serves a GET/HEAD entry through the server's own routes.
func (s *Server) subRequest(parent *http.Request, e *bundleEntry) {
	target := BasePath + "/" + strings.TrimPrefix(e.rawURL, "/")
	if base := s.baseURL(parent); strings.HasPrefix(e.rawURL, base+"/") {
		target = BasePath + "/" + e.rawURL[len(base)+1:]
	}
	req, err := http.NewRequestWithContext(parent.Context(), http.MethodGet, target, nil)
	if err != nil {
		e.err = errorf(CodeInvalidBundle, "entry.request.url is not a valid URL")
		return
	}
	req.Host = parent.Host
	req.TLS = parent.TLS
	req.Header.Set("Prefer", parent.Header.Get("Prefer"))
	rec := &captureWriter{header: http.Header{}}
	s.mux.ServeHTTP(rec, req)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	e.resp = entryJSON{Response: &responseJSON{
		Status: statusLine(status), Etag: rec.header.Get("ETag"),
	}}
	if status >= 400 {
		e.resp.Response.Outcome = rec.body
		return
	}
	if e.method == http.MethodGet && len(rec.body) > 0 {
		e.resp.Resource = rec.body
	}
}

// captureWriter records a sub-request's response.
type captureWriter struct {
	header http.Header
	status int
	body   []byte
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body = append(c.body, b...)
	return len(b), nil
}
