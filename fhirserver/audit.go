package fhirserver

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"phix/audit"
	"phix/fhir/search"
)

// auditor turns requests into audit events. Writes are appended durably
// before the response is sent; reads, searches and history are recorded
// asynchronously (durable a few ms later, docs/audit.md). Ids reach the log
// only as pseudonyms and queries only as a keyed hash plus parameter names.
type auditor struct {
	log *audit.Log
	ps  *audit.Pseudonymizer
	s   *Server
}

// auditRoute maps a route pattern and method to an audit action; ok is false
// for routes that are not audited (metadata, unknown endpoints).
func auditRoute(pattern, method string) (audit.Action, bool) {
	p := strings.TrimPrefix(pattern, BasePath)
	switch {
	case p == "/metadata" || pattern == "/" || pattern == "":
		return "", false
	case strings.Contains(p, "$"):
		return audit.ActionOperation, true
	case strings.HasSuffix(p, "/_history/{vid}"):
		return audit.ActionVRead, true
	case strings.HasSuffix(p, "_history"):
		return audit.ActionHistory, true
	case strings.HasSuffix(p, "_search"):
		return audit.ActionSearch, true
	case p == "/{type}/{id}":
		switch method {
		case http.MethodGet, http.MethodHead:
			return audit.ActionRead, true
		case http.MethodPut:
			return audit.ActionUpdate, true
		case http.MethodDelete:
			return audit.ActionDelete, true
		case http.MethodPatch:
			return audit.ActionPatch, true
		}
	case p == "/{type}":
		switch method {
		case http.MethodGet, http.MethodHead:
			return audit.ActionSearch, true
		case http.MethodPost:
			return audit.ActionCreate, true
		case http.MethodPut:
			return audit.ActionUpdate, true
		case http.MethodDelete:
			return audit.ActionDelete, true
		case http.MethodPatch: // conditional patch
			return audit.ActionPatch, true
		}
	case p == "" || p == "/{$}":
		if method == http.MethodPost {
			// batch or transaction: one event for the Bundle
			return audit.ActionOperation, true
		}
		return audit.ActionSearch, true
	}
	return "", false
}

func outcomeOf(status int) audit.Outcome {
	switch {
	case status < 400:
		return audit.OutcomeSuccess
	case status < 500:
		return audit.OutcomeMinorFailure
	default:
		return audit.OutcomeSeriousFailure
	}
}

func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead
}

// event builds the event of a finished request. status is the response
// status; h the response headers (Location names a created resource).
func (a *auditor) event(r *http.Request, rid string, status int, h http.Header) (audit.Event, bool) {
	action, ok := auditRoute(r.Pattern, r.Method)
	if !ok {
		return audit.Event{}, false
	}
	ev := audit.Event{Action: action, Outcome: outcomeOf(status), RequestID: rid}
	if p := PrincipalFrom(r.Context()); p != nil {
		ev.Who.User = a.ps.User(p.Subject)
		ev.Who.Role = string(roleOf(p))
	}
	a.s.noteDecision(r.Context(), &ev)
	if a.bundleEvent(auditNoteFrom(r.Context()), &ev) {
		return ev, true
	}
	typ, id := r.PathValue("type"), r.PathValue("id")
	if typ == "" && r.Pattern != "" && strings.TrimPrefix(r.Pattern, BasePath) != r.Pattern && action == audit.ActionOperation && r.Method == http.MethodPost && !strings.Contains(r.Pattern, "$") {
		typ = "Bundle"
	}
	if id == "" && status < 300 {
		// A create (or conditional write) names its resource in Location only.
		if lt, lid, ok := locationID(h.Get("Location")); ok && (typ == "" || lt == typ) {
			typ, id = lt, lid
		}
	}
	if typ != "" && checkType(typ) == nil {
		ev.What.ResourceType = typ
		if id != "" && validID(id) {
			ev.What.ResourceID = a.ps.Resource(typ, id)
			if typ == "Patient" {
				ev.What.Patient = ev.What.ResourceID
			}
		}
	}
	if action == audit.ActionSearch || action == audit.ActionHistory || (r.Method == http.MethodPut && id == "") || (r.Method == http.MethodDelete && id == "") {
		ev.What.QueryHash, ev.What.QueryParams = a.query(r)
	}
	return ev, true
}

// query returns the keyed hash of the canonical query (sorted name=value
// pairs of the URL and a form body) and the parameter names; values never
// leave this function.
func (a *auditor) query(r *http.Request) (string, []string) {
	vals := url.Values{}
	for k, v := range r.URL.Query() {
		vals[k] = append(vals[k], v...)
	}
	for k, v := range r.PostForm {
		vals[k] = append(vals[k], v...)
	}
	if len(vals) == 0 {
		return "", nil
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		// A name outside the search vocabulary is the client's text (it
		// can be a patient's name): only the query hash covers it.
		if validParamName(k) && search.VocabularyName(k) && len(names) < 32 {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return a.ps.QueryHash(vals.Encode()), names
}

// validParamName mirrors the audit schema's parameter-name syntax, so a
// malformed name is dropped rather than failing the event.
func validParamName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// locationID reads "<base>/<type>/<id>[/_history/<vid>]".
func locationID(loc string) (typ, id string, ok bool) {
	if loc == "" {
		return "", "", false
	}
	if u, err := url.Parse(loc); err == nil {
		loc = u.Path
	}
	if i := strings.Index(loc, "/_history/"); i >= 0 {
		loc = loc[:i]
	}
	parts := strings.Split(strings.Trim(loc, "/"), "/")
	if len(parts) < 2 {
		return "", "", false
	}
	return parts[len(parts)-2], parts[len(parts)-1], true
}

// emit appends (writes) or records (reads) the event of a request. A failed
// append is logged without content: the write it describes has already
// committed, so the client still gets its answer.
func (a *auditor) emit(r *http.Request, rid string, status int, h http.Header) {
	ev, ok := a.event(r, rid, status, h)
	if !ok {
		return
	}
	a.write(r.Context(), r.Method, ev)
}

func (a *auditor) write(ctx context.Context, method string, ev audit.Event) {
	var err error
	if isWrite(method) || ev.Action == audit.ActionSecurityAlert {
		_, err = a.log.Append(context.WithoutCancel(ctx), ev)
	} else {
		err = a.log.Record(ev)
	}
	if err != nil {
		a.s.log.Error("audit event not written", "request_id", ev.RequestID, "action", string(ev.Action), "error", auditErrText(err))
	}
}

// securityAlert appends an auth-failure (401) or policy-violation (403) event.
func (a *auditor) securityAlert(r *http.Request, rid string, kind audit.AlertKind, p *Principal) {
	ev := audit.Event{Action: audit.ActionSecurityAlert, Alert: kind, Outcome: audit.OutcomeMinorFailure, RequestID: rid}
	if p != nil {
		ev.Who.User = a.ps.User(p.Subject)
		ev.Who.Role = string(roleOf(p))
	}
	a.write(r.Context(), r.Method, ev)
}

// auditErrText keeps only the audit package's own, content-free error text.
func auditErrText(err error) string {
	if fe, ok := err.(*audit.FieldError); ok {
		return "invalid event field " + fe.Field
	}
	return err.Error()
}

func roleOf(p *Principal) Role {
	if p.Role == "" {
		return RoleClinician
	}
	return p.Role
}
