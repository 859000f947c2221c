package fhirserver

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"phix/fhir/search"
	"phix/store"
)

// serverParams are handled by the server and never reach the search parser.
var serverParams = []string{"_format", "_pretty"}

// searchValues collects the parameters of a search: the query string, plus a
// form body for POST _search.
func (s *Server) searchValues(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(CodeInvalidSearch, "malformed query string")
	}
	if r.Method != http.MethodPost {
		return values, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, errorf(CodeUnsupportedMedia, "POST _search needs application/x-www-form-urlencoded")
		}
	}
	body, err := s.readLimited(w, r)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errorf(CodeInvalidSearch, "malformed form body")
	}
	for k, vs := range form {
		values[k] = append(values[k], vs...)
	}
	return values, nil
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) error {
	typ := r.PathValue("type")
	if err := checkType(typ); err != nil {
		return err
	}
	values, err := s.searchValues(w, r)
	if err != nil {
		return err
	}
	return s.search(w, r, typ, values)
}

func (s *Server) handleSystemSearch(w http.ResponseWriter, r *http.Request) error {
	values, err := s.searchValues(w, r)
	if err != nil {
		return err
	}
	return s.search(w, r, "", values)
}

// search runs a search and answers with a searchset Bundle.
func (s *Server) search(w http.ResponseWriter, r *http.Request, typ string, values url.Values) error {
	pref := parsePrefer(r)
	params := url.Values{}
	for k, vs := range values {
		params[k] = vs
	}
	for _, k := range serverParams {
		params.Del(k)
	}
	sh, err := parseShaping(params.Get("_summary"), params["_elements"])
	if err != nil {
		return err
	}
	q, warnings, err := s.parseQuery(typ, params, pref.strict)
	if err != nil {
		return err
	}
	count := q.Count
	if count <= 0 {
		count = s.cfg.DefaultPageSize
	}
	if count > s.cfg.MaxPageSize {
		count = s.cfg.MaxPageSize
	}
	if _, given := params["_count"]; given && q.Count == 0 {
		count = 0 // _count=0: the total only
	}
	offset := q.Offset
	onlyTotal := sh.summary == "count" || count == 0
	switch {
	case onlyTotal:
		q.Count = -1
		q.Total = search.TotalAccurate
	case q.Total == search.TotalNone:
		q.Count = count + 1 // one more tells whether a next page exists
	default:
		q.Count = count
		q.Total = search.TotalAccurate
	}
	res, err := s.cfg.Store.Search(r.Context(), q)
	if err != nil {
		return storeError(err)
	}
	base := s.baseURL(r)
	matches := res.Matches
	hasNext := false
	if !onlyTotal {
		if q.Total == search.TotalNone {
			hasNext = len(matches) > count
			if hasNext {
				matches = matches[:count]
			}
		} else {
			hasNext = offset+len(matches) < res.Total
		}
	}
	b := newBundle("searchset")
	if res.Total >= 0 && q.Total != search.TotalNone {
		t := res.Total
		b.Total = &t
	}
	self := base
	if typ != "" {
		self += "/" + typ
	}
	canon := params
	canon.Del("_count")
	canon.Del("_offset")
	linkCount := count
	if onlyTotal {
		linkCount = 0
	}
	b.Link = pageLinks(self, canon, offset, linkCount, hasNext)
	for _, rec := range matches {
		body := rec.Body
		if sh.active() {
			if body, err = sh.apply(rec.Body); err != nil {
				return err
			}
		}
		b.Entry = append(b.Entry, entryJSON{FullURL: fullURL(base, rec), Resource: body, Search: &searchJSON{Mode: "match"}})
	}
	for _, rec := range res.Included {
		b.Entry = append(b.Entry, entryJSON{FullURL: fullURL(base, rec), Resource: rec.Body, Search: &searchJSON{Mode: "include"}})
	}
	if len(warnings) > 0 {
		b.Entry = append(b.Entry, entryJSON{Resource: outcomeJSON(warnings), Search: &searchJSON{Mode: "outcome"}})
	}
	return writeBundle(w, http.StatusOK, b)
}

// matchCondition runs the search of a conditional interaction (If-None-Exist,
// conditional update/delete, conditional references) and returns up to
// limit matches; more than limit matches is a 412. Unknown parameters are
// always an error here: ignoring one would widen the match.
func (s *Server) matchCondition(ctx context.Context, rd store.Reader, typ, rawQuery string, limit int) ([]*store.Record, error) {
	// Some clients send If-None-Exist as "Type?query"; the query is what counts.
	if i := strings.IndexByte(rawQuery, '?'); i >= 0 {
		if t := rawQuery[:i]; t != typ && checkType(t) == nil {
			return nil, errorf(CodeInvalidSearch, "the condition names another resource type")
		}
		rawQuery = rawQuery[i+1:]
	}
	values, err := url.ParseQuery(rawQuery)
	if err != nil || len(values) == 0 {
		return nil, errorf(CodeInvalidSearch, "malformed search condition")
	}
	for _, k := range serverParams {
		values.Del(k)
	}
	q, _, err := s.parseQuery(typ, values, true)
	if err != nil {
		return nil, err
	}
	if len(q.Clauses) == 0 {
		return nil, errorf(CodeInvalidSearch, "a search condition needs at least one search parameter")
	}
	q.Count = limit + 1
	q.Offset = 0
	q.Total = search.TotalNone
	q.Include, q.RevInclude = nil, nil
	res, err := rd.Search(ctx, q)
	if err != nil {
		return nil, storeError(err)
	}
	if len(res.Matches) > limit {
		return nil, errorf(CodeMultipleMatches, "the condition matched more resources than allowed")
	}
	return res.Matches, nil
}

// parseQuery runs the search parser and maps its errors and warnings.
func (s *Server) parseQuery(typ string, values url.Values, strict bool) (*search.Query, []Issue, error) {
	q, warnings, err := search.Parse(typ, values, search.ParseOptions{Strict: strict, MaxCount: s.cfg.MaxPageSize, Custom: s.customParams()})
	if err != nil {
		var se *search.Error
		if errors.As(err, &se) {
			e := errorf(CodeInvalidSearch, searchDiagnostics(se.Param, se.Msg))
			switch se.Code {
			case search.CodeUnknownType:
				e = errorf(CodeUnknownType, "unknown resource type")
			case search.CodeUnsupported, search.CodeUnknownParam:
				e.Issues[0].Type = "not-supported"
			case search.CodeTooMany:
				e.Issues[0].Type = "too-costly"
			}
			return nil, nil, e
		}
		return nil, nil, errorf(CodeInvalidSearch, "invalid search")
	}
	var issues []Issue
	for _, w := range warnings {
		issues = append(issues, Issue{Severity: "warning", Type: "not-supported", Code: CodeSearchWarning, Diagnostics: searchDiagnostics(w.Param, w.Msg)})
	}
	return q, issues, nil
}

// searchDiagnostics names the parameter (a name, never its value).
func searchDiagnostics(param, msg string) string {
	if param == "" {
		return msg
	}
	return "parameter " + param + ": " + msg
}
