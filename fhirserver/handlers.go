package fhirserver

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"phix/fhir"
	"phix/store"
)

// baseURL is the absolute URL of the API for links in responses.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + BasePath
}

// prefer is the parsed Prefer header.
type prefer struct {
	ret    string // "minimal", "representation" or "OperationOutcome"; "" = default
	strict bool   // handling=strict
}

func parsePrefer(r *http.Request) prefer {
	var p prefer
	for _, h := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(h, ",") {
			for _, kv := range strings.Split(part, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
				v = strings.Trim(strings.TrimSpace(v), `"`)
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "return":
					switch strings.ToLower(v) {
					case "minimal":
						p.ret = "minimal"
					case "representation":
						p.ret = "representation"
					case "operationoutcome":
						p.ret = "OperationOutcome"
					}
				case "handling":
					p.strict = strings.EqualFold(v, "strict")
				}
			}
		}
	}
	return p
}

// writeRecord answers a successful interaction with rec according to Prefer.
func (s *Server) writeRecord(w http.ResponseWriter, r *http.Request, status int, rec *store.Record, located bool) {
	h := w.Header()
	loc := s.baseURL(r) + "/" + rec.Type + "/" + rec.ID + "/_history/" + strconv.FormatInt(rec.Version, 10)
	h.Set("ETag", etag(rec.Version))
	h.Set("Last-Modified", rec.LastUpdated.UTC().Format(http.TimeFormat))
	if located {
		h.Set("Location", loc)
		h.Set("Content-Location", loc)
	}
	switch parsePrefer(r).ret {
	case "minimal":
		w.WriteHeader(status)
	case "OperationOutcome":
		writeJSON(w, status, outcomeJSON([]Issue{{Severity: "information", Type: "informational", Diagnostics: "operation completed"}}))
	default:
		writeJSON(w, status, rec.Body)
	}
}

func (s *Server) handleRead(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := instance(r)
	if err != nil {
		return err
	}
	rec, err := s.cfg.Store.Read(r.Context(), typ, id)
	if err != nil {
		if errors.Is(err, store.ErrDeleted) && rec != nil {
			w.Header().Set("ETag", etag(rec.Version))
		}
		return storeError(err)
	}
	return s.serveRecord(w, r, rec)
}

func (s *Server) handleVRead(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := instance(r)
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(r.PathValue("vid"), 10, 64)
	if err != nil || v < 1 {
		return errorf(CodeNotFound, "no such version")
	}
	rec, err := s.cfg.Store.VRead(r.Context(), typ, id, v)
	if err != nil {
		return storeError(err)
	}
	if rec.Deleted {
		w.Header().Set("ETag", etag(rec.Version))
		return errorf(CodeGone, "this version is a deletion")
	}
	return s.serveRecord(w, r, rec)
}

// notModified is FHIR's conditional read (RFC 9110 13.1.2, 13.1.3):
// If-None-Match, a list of entity tags or "*", compared weakly; without
// it, If-Modified-Since at one-second precision.
func notModified(h http.Header, et string, lastUpdated time.Time) bool {
	if inm := h.Get("If-None-Match"); inm != "" {
		want := strings.TrimPrefix(et, "W/")
		for _, t := range strings.Split(inm, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == want {
				return true
			}
		}
		return false
	}
	if ims := h.Get("If-Modified-Since"); ims != "" {
		since, err := http.ParseTime(ims)
		return err == nil && !lastUpdated.Truncate(time.Second).After(since)
	}
	return false
}

// serveRecord answers a read: the stored bytes as they are, unless
// _summary/_elements ask for a subset.
func (s *Server) serveRecord(w http.ResponseWriter, r *http.Request, rec *store.Record) error {
	h := w.Header()
	et := etag(rec.Version)
	h.Set("ETag", et)
	h.Set("Last-Modified", rec.LastUpdated.UTC().Format(http.TimeFormat))
	if notModified(r.Header, et, rec.LastUpdated) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	body := rec.Body
	q := r.URL.Query()
	if sh, err := parseShaping(q.Get("_summary"), q["_elements"]); err != nil {
		return err
	} else if sh.active() {
		b, err := sh.apply(rec.Body)
		if err != nil {
			return err
		}
		body = b
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) error {
	typ := r.PathValue("type")
	if err := checkType(typ); err != nil {
		return err
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	res, err := s.parseResource(data)
	if err != nil {
		return err
	}
	if res.Type != typ {
		return mismatch("resourceType does not match the URL", "resourceType")
	}
	// The server assigns the id of a create; a client id is ignored (R4 3.1.0.5).
	if err := validate(r.Context(), res); err != nil {
		return err
	}
	cond := r.Header.Get("If-None-Exist")
	var out *writeResult
	err = s.runTx(r.Context(), func(tx store.Tx) error {
		out = nil
		if cond != "" {
			recs, err := s.matchCondition(r.Context(), tx, typ, cond, 1)
			if err != nil {
				return err
			}
			if len(recs) == 1 {
				rec, err := s.plain(r.Context(), recs[0])
				out = &writeResult{status: http.StatusOK, rec: rec}
				return err
			}
		}
		var err error
		out, err = s.create(r.Context(), tx, cloneResource(res), "")
		return err
	})
	if err != nil {
		return err
	}
	s.writeRecord(w, r, out.status, out.rec, true)
	return nil
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := instance(r)
	if err != nil {
		return err
	}
	res, ifVersion, err := s.updateBody(w, r, typ)
	if err != nil {
		return err
	}
	if res.ID != id {
		return mismatch("the body's id must equal the id in the URL", "id")
	}
	var out *writeResult
	err = s.runTx(r.Context(), func(tx store.Tx) error {
		var err error
		out, err = s.update(r.Context(), tx, cloneResource(res), id, ifVersion)
		return err
	})
	if err != nil {
		return err
	}
	s.writeRecord(w, r, out.status, out.rec, true)
	return nil
}

// updateBody reads, parses and validates the body of an update, and its If-Match.
func (s *Server) updateBody(w http.ResponseWriter, r *http.Request, typ string) (*fhir.Resource, int64, error) {
	var ifVersion int64
	if im := r.Header.Get("If-Match"); im != "" {
		v, err := parseETag(im)
		if err != nil {
			return nil, 0, err
		}
		ifVersion = v
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return nil, 0, err
	}
	res, err := s.parseResource(data)
	if err != nil {
		return nil, 0, err
	}
	if res.Type != typ {
		return nil, 0, mismatch("resourceType does not match the URL", "resourceType")
	}
	if res.ID != "" {
		if err := checkID(res.ID); err != nil {
			return nil, 0, err
		}
	}
	if err := validate(r.Context(), res); err != nil {
		return nil, 0, err
	}
	return res, ifVersion, nil
}

func (s *Server) handleConditionalUpdate(w http.ResponseWriter, r *http.Request) error {
	typ := r.PathValue("type")
	if err := checkType(typ); err != nil {
		return err
	}
	if r.URL.RawQuery == "" {
		return errorf(CodeMethodNotAllowed, "PUT needs an id or a search condition")
	}
	res, ifVersion, err := s.updateBody(w, r, typ)
	if err != nil {
		return err
	}
	var out *writeResult
	err = s.runTx(r.Context(), func(tx store.Tx) error {
		recs, err := s.matchCondition(r.Context(), tx, typ, r.URL.RawQuery, 1)
		if err != nil {
			return err
		}
		id := res.ID
		switch len(recs) {
		case 0:
			if id == "" {
				id = newID()
			}
		case 1:
			if id != "" && id != recs[0].ID {
				return mismatch("the body's id differs from the matched resource's", "id")
			}
			id = recs[0].ID
		}
		out, err = s.update(r.Context(), tx, cloneResource(res), id, ifVersion)
		return err
	})
	if err != nil {
		return err
	}
	s.writeRecord(w, r, out.status, out.rec, true)
	return nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := instance(r)
	if err != nil {
		return err
	}
	var ifVersion int64
	if im := r.Header.Get("If-Match"); im != "" {
		v, err := parseETag(im)
		if err != nil {
			return err
		}
		ifVersion = v
	}
	var out *writeResult
	err = s.runTx(r.Context(), func(tx store.Tx) error {
		var err error
		out, err = s.remove(r.Context(), tx, typ, id, ifVersion)
		return err
	})
	if err != nil {
		return err
	}
	s.writeDeleted(w, r, out.rec, 1)
	return nil
}

func (s *Server) handleConditionalDelete(w http.ResponseWriter, r *http.Request) error {
	typ := r.PathValue("type")
	if err := checkType(typ); err != nil {
		return err
	}
	if r.URL.RawQuery == "" {
		return errorf(CodeMethodNotAllowed, "DELETE needs an id or a search condition")
	}
	var last *store.Record
	n := 0
	err := s.runTx(r.Context(), func(tx store.Tx) error {
		last, n = nil, 0
		recs, err := s.matchCondition(r.Context(), tx, typ, r.URL.RawQuery, s.cfg.MaxConditionalDelete)
		if err != nil {
			return err
		}
		for _, m := range recs {
			out, err := s.remove(r.Context(), tx, typ, m.ID, 0)
			if err != nil {
				return err
			}
			last = out.rec
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n != 1 {
		last = nil // an ETag names one resource's version
	}
	s.writeDeleted(w, r, last, n)
	return nil
}

func (s *Server) writeDeleted(w http.ResponseWriter, r *http.Request, rec *store.Record, n int) {
	if rec != nil {
		w.Header().Set("ETag", etag(rec.Version))
		w.Header().Set("Last-Modified", rec.LastUpdated.UTC().Format(http.TimeFormat))
	}
	if parsePrefer(r).ret == "OperationOutcome" {
		writeJSON(w, http.StatusOK, outcomeJSON([]Issue{{Severity: "information", Type: "informational",
			Diagnostics: "deleted " + strconv.Itoa(n) + " resource(s)"}}))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// cloneResource gives each transaction attempt its own top-level map, since
// put sets id and meta in it (stamp never modifies nested values).
func cloneResource(r *fhir.Resource) *fhir.Resource {
	obj := make(map[string]any, len(r.Object))
	for k, v := range r.Object {
		obj[k] = v
	}
	return &fhir.Resource{Type: r.Type, ID: r.ID, Object: obj}
}
