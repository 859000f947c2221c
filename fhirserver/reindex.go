package fhirserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"phix/fhir"
	"phix/fhir/search"
	"phix/phi"
	"phix/store"
	"phix/store/reindex"
)

// Custom SearchParameters and $reindex (docs/reindex.md). With
// Config.Reindex set, a SearchParameter write is validated (a bad one is a
// 400 OperationOutcome naming the element and, for the expression, the
// position), every write indexes the custom parameters, searches consult
// the custom registry, and $reindex starts background jobs.

// index returns the index entries of res and checks a SearchParameter's
// definition. It runs inside the write transaction.
func (s *Server) index(res *fhir.Resource) ([]search.Entry, error) {
	if err := s.checkDefinition(res); err != nil {
		return nil, err
	}
	if s.cfg.Reindex == nil {
		return search.Extract(res), nil
	}
	return s.cfg.Reindex.Extract(res), nil
}

// checkDefinition refuses a SearchParameter whose definition the custom
// registry cannot take (only with Config.Reindex).
func (s *Server) checkDefinition(res *fhir.Resource) error {
	if s.cfg.Reindex == nil || res.Type != "SearchParameter" {
		return nil
	}
	if err := s.cfg.Reindex.Validate(res); err != nil {
		return definitionError(err)
	}
	return nil
}

// customEntries are the custom parameters' entries of res (nil without
// Config.Reindex). With field protection they are taken from the sealed
// form, like the built-in parameters' clear entries: a custom parameter on
// a PHI element indexes nothing rather than plaintext.
func (s *Server) customEntries(res *fhir.Resource) []search.Entry {
	if s.cfg.Reindex == nil {
		return nil
	}
	return s.cfg.Reindex.Custom().Extract(res)
}

// reindexEntries is the reindex jobs' extraction with field protection on:
// a stored (sealed) version is opened and sealed again for its blind and
// clear entries, and its custom entries come from the sealed form. An
// erased patient's resources keep only what the sealed form gives.
func (s *Server) reindexEntries(ctx context.Context, rec *store.Record) ([]search.Entry, error) {
	stored, err := fhir.Parse(rec.Body, fhir.ParseOptions{MaxDepth: 1 << 10})
	if err != nil {
		return nil, nil // as the default extractor: an unparsable body keeps no entries
	}
	plain, err := s.protect.OpenJSON(ctx, rec.Body)
	switch {
	case errors.Is(err, phi.ErrKeyDestroyed):
		return search.Extract(stored), nil
	case err != nil:
		return nil, err
	}
	_, entries, err := s.protect.Seal(ctx, plain, keyOwner(plain))
	if err != nil {
		return nil, err
	}
	return append(entries, s.customEntries(stored)...), nil
}

// customParams is the runtime registry for the search parser (nil without
// Config.Reindex).
func (s *Server) customParams() *search.Custom {
	if s.cfg.Reindex == nil {
		return nil
	}
	return s.cfg.Reindex.Custom()
}

func definitionError(err error) error {
	var de *search.DefinitionError
	if !errors.As(err, &de) {
		return errorf(CodeValidation, "invalid SearchParameter")
	}
	// The message names the element and the problem, never a value.
	return &Error{Status: http.StatusBadRequest, Issues: []Issue{{
		Severity: "error", Type: "invalid", Code: CodeValidation,
		Diagnostics: de.Error(), Expression: []string{"SearchParameter." + de.Field},
	}}}
}

// maxReindexArgs bounds the url and type values of one $reindex request.
const maxReindexArgs = 64

// handleReindex is POST [base]/$reindex and [base]/[type]/$reindex: it
// starts a job and answers 202 with Content-Location naming its status
// ($reindex-status?_jobId=). Optional parameters, in the query or in a
// Parameters body: url (a custom SearchParameter's canonical URL,
// repeatable: only its entries are rebuilt and it becomes searchable when
// the job completes) and type (repeatable; system level only).
func (s *Server) handleReindex(w http.ResponseWriter, r *http.Request) error {
	m := s.cfg.Reindex
	if m == nil {
		return errorf(CodeNotSupported, "$reindex is not enabled on this server")
	}
	typ := r.PathValue("type")
	if typ != "" {
		if err := checkType(typ); err != nil {
			return err
		}
	}
	q := r.URL.Query()
	urls, types := q["url"], q["type"]
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		data, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		if len(data) > 0 {
			res, err := s.parseResource(data)
			if err != nil {
				return err
			}
			if res.Type != "Parameters" {
				return errorf(CodeInvalidRequest, "$reindex takes a Parameters body")
			}
			u, t, err := reindexParameters(res.Object)
			if err != nil {
				return err
			}
			urls, types = append(urls, u...), append(types, t...)
		}
	}
	if typ != "" {
		if len(types) > 0 {
			return errorf(CodeInvalidRequest, "type is given by the URL of a type-level $reindex")
		}
		types = []string{typ}
	}
	if len(urls) > maxReindexArgs || len(types) > maxReindexArgs {
		e := errorf(CodeInvalidRequest, "too many url or type parameters")
		e.Issues[0].Type = "too-costly"
		return e
	}
	for _, t := range types {
		if !fhir.IsResourceType(t) {
			return errorf(CodeInvalidRequest, "type must name a resource type")
		}
	}
	job, err := m.Start(r.Context(), types, urls)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(CodeInvalidRequest, "url must name an active custom SearchParameter of this server")
	case err != nil:
		return storeError(err)
	}
	loc := s.baseURL(r) + "/$reindex-status?_jobId=" + url.QueryEscape(job.ID)
	w.Header().Set("Content-Location", loc)
	w.Header().Set("X-Progress", progress(job))
	writeJSON(w, http.StatusAccepted, jobParameters(job))
	return nil
}

// reindexParameters reads the url and type parameters of a Parameters body.
func reindexParameters(obj map[string]any) (urls, types []string, err error) {
	params, _ := obj["parameter"].([]any)
	for _, p := range params {
		pm, _ := p.(map[string]any)
		name, _ := pm["name"].(string)
		var v string
		for _, k := range []string{"valueUri", "valueCanonical", "valueUrl", "valueCode", "valueString"} {
			if s, ok := pm[k].(string); ok {
				v = s
				break
			}
		}
		switch name {
		case "url":
			urls = append(urls, v)
		case "type":
			types = append(types, v)
		default:
			return nil, nil, errorf(CodeInvalidRequest, "$reindex takes only url and type parameters")
		}
		if v == "" {
			return nil, nil, errorf(CodeInvalidRequest, "$reindex parameters need a non-empty value")
		}
	}
	return urls, types, nil
}

// handleReindexStatus is GET [base]/$reindex-status?_jobId=: the job as a
// Parameters resource, with the percentage done also in X-Progress.
func (s *Server) handleReindexStatus(w http.ResponseWriter, r *http.Request) error {
	m := s.cfg.Reindex
	if m == nil {
		return errorf(CodeNotSupported, "$reindex is not enabled on this server")
	}
	job, err := m.Job(r.Context(), r.URL.Query().Get("_jobId"))
	if errors.Is(err, store.ErrNotFound) {
		return errorf(CodeNotFound, jobNotFound)
	}
	if err != nil {
		return storeError(err)
	}
	w.Header().Set("X-Progress", progress(job))
	writeJSON(w, http.StatusOK, jobParameters(job))
	return nil
}

func progress(j *reindex.Job) string {
	return strconv.FormatFloat(j.Percent(), 'f', 1, 64) + "% done"
}

// jobParameters renders a job: id, kind, status, progress (percent),
// processed, total, type* and url* parameters, created, updated, and error
// when it failed.
func jobParameters(j *reindex.Job) []byte {
	var ps []any
	add := func(name, key string, v any) {
		ps = append(ps, map[string]any{"name": name, key: v})
	}
	add("id", "valueString", j.ID)
	add("kind", "valueCode", j.Kind)
	add("status", "valueCode", j.Status)
	add("progress", "valueDecimal", jsonDecimal(j.Percent()))
	add("processed", "valueInteger", j.Processed)
	add("total", "valueInteger", j.Total)
	for _, t := range j.Types {
		add("type", "valueCode", t)
	}
	for _, p := range j.Params {
		if p.URL != "" {
			add("url", "valueUri", p.URL)
		}
	}
	add("created", "valueInstant", j.Created.UTC().Format(time.RFC3339Nano))
	add("updated", "valueInstant", j.Updated.UTC().Format(time.RFC3339Nano))
	if j.Error != "" {
		add("error", "valueString", j.Error)
	}
	// Strings, numbers and maps of them always encode.
	data, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": ps})
	return data
}

// jsonDecimal is a percentage with one decimal, as a JSON number.
type jsonDecimal float64

func (d jsonDecimal) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(d), 'f', 1, 64)), nil
}
