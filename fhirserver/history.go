package fhirserver

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"phix/store"
)

// handleHistory serves instance, type and system history.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) error {
	typ, id := r.PathValue("type"), r.PathValue("id")
	if typ != "" {
		if err := checkType(typ); err != nil {
			return err
		}
	}
	if id != "" {
		if err := checkID(id); err != nil {
			return err
		}
	}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errorf(CodeInvalidRequest, "malformed query string")
	}
	opts := store.HistoryOptions{Type: typ, ID: id}
	canon := url.Values{}
	for k, vs := range values {
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		switch k {
		case "_since", "_at":
			// An unencoded "+" of a time zone arrives as a space.
			t, err := parseInstant(strings.ReplaceAll(v, " ", "+"))
			if err != nil {
				return errorf(CodeInvalidRequest, k+" must be a FHIR instant or dateTime")
			}
			if k == "_since" {
				opts.Since = t
			} else {
				opts.At = t
			}
			canon.Set(k, v)
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errorf(CodeInvalidRequest, "_count must be a non-negative integer")
			}
			opts.Count = n
		case "_offset":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errorf(CodeInvalidRequest, "_offset must be a non-negative integer")
			}
			opts.Offset = n
		case "_format", "_pretty":
		default:
			if parsePrefer(r).strict {
				return errorf(CodeInvalidRequest, "unknown history parameter")
			}
		}
	}
	count := opts.Count
	if _, given := values["_count"]; !given {
		count = s.cfg.DefaultPageSize
	}
	if count > s.cfg.MaxPageSize {
		count = s.cfg.MaxPageSize
	}
	opts.Count = count
	if count == 0 {
		opts.Count = -1
	}
	recs, total, err := s.cfg.Store.History(r.Context(), opts)
	if err != nil {
		return storeError(err)
	}
	if id != "" && total == 0 && opts.Since.IsZero() && opts.At.IsZero() {
		if _, err := s.cfg.Store.Read(r.Context(), typ, id); errors.Is(err, store.ErrNotFound) {
			return errorf(CodeNotFound, "resource not found")
		}
	}
	if id != "" && erasedVersion(recs) {
		return errorf(CodeErased, "this resource's patient data was erased")
	}
	base := s.baseURL(r)
	self := base
	if typ != "" {
		self += "/" + typ
		if id != "" {
			self += "/" + id
		}
	}
	self += "/_history"
	b := newBundle("history")
	b.Total = &total
	b.Link = pageLinks(self, canon, opts.Offset, count, count > 0 && opts.Offset+len(recs) < total)
	for _, rec := range recs {
		b.Entry = append(b.Entry, historyEntry(base, rec))
	}
	return writeBundle(w, http.StatusOK, b)
}

func historyEntry(base string, rec *store.Record) entryJSON {
	e := entryJSON{FullURL: fullURL(base, rec)}
	method := rec.Method
	if method == "" {
		method = http.MethodPut
	}
	req := &requestJSON{Method: method, URL: rec.Type + "/" + rec.ID}
	status := http.StatusOK
	switch {
	case rec.Deleted:
		req.Method = http.MethodDelete
		status = http.StatusNoContent
	case method == http.MethodPost:
		req.URL = rec.Type
		status = http.StatusCreated
	case rec.Version == 1:
		status = http.StatusCreated
	}
	if !rec.Deleted && rec.Body == nil {
		// The patient was erased ($erase): the version exists, its content
		// no longer opens.
		status = http.StatusGone
		e.Response = &responseJSON{Status: statusLine(status), Etag: etag(rec.Version), LastModified: httpTime(rec.LastUpdated),
			Outcome: outcomeJSON([]Issue{{Severity: "error", Code: CodeErased, Diagnostics: "this version's patient data was erased"}})}
		e.Request = req
		return e
	}
	if !rec.Deleted {
		e.Resource = rec.Body
	}
	e.Request = req
	e.Response = &responseJSON{Status: statusLine(status), Etag: etag(rec.Version), LastModified: httpTime(rec.LastUpdated)}
	return e
}

// parseInstant reads a FHIR instant, dateTime or partial date as the start
// of the period it names.
func parseInstant(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not an instant")
}
