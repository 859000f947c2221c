package audit

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FHIR code systems used in AuditEvent rendering.
const (
	sysAuditType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	sysRESTful     = "http://hl7.org/fhir/restful-interaction"
	sysDCM         = "http://dicom.nema.org/resources/ontology/DCM"
	sysAuthZ       = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
	sysEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	sysObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	sysBALPEntity  = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	sysActReason   = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	sysSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	sysPartType    = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	sysPseudonym   = "urn:phix:audit:pseudonym"
	sysUser        = "urn:phix:audit:user"
	sysOrg         = "urn:phix:audit:org"
	sysCertFP      = "urn:phix:audit:cert-sha256"
	sysRequestID   = "urn:phix:audit:request-id"
	sysConsent     = "urn:phix:audit:consent"
	sysDataClass   = "urn:phix:audit:data-class"
	sysAlert       = "urn:phix:audit:alert"
	sysError       = "urn:phix:error"
	balpProfileURL = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
)

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// restInfo maps REST actions to the restful-interaction code, the AuditEvent
// action code and the BALP profile (without and with a patient).
var restInfo = map[Action]struct{ sub, act, profile, patientProfile string }{
	ActionCreate:    {"create", "C", "Create", "PatientCreate"},
	ActionRead:      {"read", "R", "Read", "PatientRead"},
	ActionVRead:     {"vread", "R", "Read", "PatientRead"},
	ActionUpdate:    {"update", "U", "Update", "PatientUpdate"},
	ActionPatch:     {"patch", "U", "Update", "PatientUpdate"},
	ActionDelete:    {"delete", "D", "Delete", "PatientDelete"},
	ActionSearch:    {"search", "E", "Query", "PatientQuery"},
	ActionHistory:   {"history-instance", "R", "Read", "PatientRead"},
	ActionOperation: {"operation", "E", "", ""},
	// A batch or transaction Bundle is one event (restful-interaction
	// transaction/batch; BALP has no profile of its own for them).
	ActionTransaction: {"transaction", "E", "", ""},
	ActionBatch:       {"batch", "E", "", ""},
}

// typeOf returns the AuditEvent type, subtypes, action code and BALP profile of an event.
func typeOf(ev *Event) (coding, []coding, string, string) {
	if ri, ok := restInfo[ev.Action]; ok {
		prof := ri.profile
		if ev.What.Patient != "" || ev.What.ResourceType == "Patient" {
			prof = ri.patientProfile
		}
		if prof != "" {
			prof = balpProfileURL + prof
		}
		return coding{sysAuditType, "rest", "Restful Operation"}, []coding{{sysRESTful, ri.sub, ""}}, ri.act, prof
	}
	switch ev.Action {
	case ActionConsent:
		return coding{sysDCM, "110113", "Security Alert"}, []coding{{sysAuthZ, "AuthZ-Consent", "Authorization Decision using Roles and Consent"}}, "E", balpProfileURL + "AuthZconsent"
	case ActionSecurityAlert:
		subs := []coding{{sysAlert, string(ev.Alert), ""}}
		if ev.Alert == AlertBreakGlass {
			subs = append(subs, coding{sysDCM, "110127", "Emergency Override Started"})
		}
		return coding{sysDCM, "110113", "Security Alert"}, subs, "E", ""
	case ActionLogin:
		return coding{sysDCM, "110114", "User Authentication"}, []coding{{sysDCM, "110122", "Login"}}, "E", ""
	default: // transfer, export
		return coding{sysDCM, "110106", "Export"}, []coding{{sysAlert, string(ev.Action), ""}}, "R", ""
	}
}

// RenderAuditEvent renders a stored event as a FHIR R4 AuditEvent following
// the IHE BALP patterns. Identifiers stay pseudonymous.
func RenderAuditEvent(ev *Event) map[string]any {
	typ, subs, act, profile := typeOf(ev)
	res := map[string]any{
		"resourceType": "AuditEvent",
		"id":           strconv.FormatInt(ev.Index, 10),
		"type":         typ,
		"subtype":      subs,
		"action":       act,
		"recorded":     ev.Time.UTC().Format(time.RFC3339Nano),
		"outcome":      outcomes[ev.Outcome],
	}
	meta := map[string]any{"versionId": "1", "lastUpdated": ev.Time.UTC().Format(time.RFC3339Nano)}
	if profile != "" {
		meta["profile"] = []string{profile}
	}
	res["meta"] = meta
	if ev.Why != nil && ev.Why.Purpose != "" {
		res["purposeOfEvent"] = []any{map[string]any{"coding": []coding{{sysActReason, ev.Why.Purpose, ""}}}}
	}
	agent := map[string]any{
		"type":      map[string]any{"coding": []coding{{sysPartType, "IRCP", "information recipient"}}},
		"requestor": true,
	}
	if ev.Who.User != "" {
		agent["who"] = map[string]any{"identifier": map[string]string{"system": sysUser, "value": ev.Who.User}}
	}
	if ev.Who.Role != "" {
		agent["role"] = []any{map[string]any{"coding": []coding{{"urn:phix:audit:role", ev.Who.Role, ""}}}}
	}
	if ev.Decision != nil {
		var pol []string
		for _, p := range ev.Decision.Policies {
			pol = append(pol, "urn:phix:policy:"+p)
		}
		if len(pol) > 0 {
			agent["policy"] = pol
		}
	}
	if ev.Who.CertFP != "" {
		agent["extension"] = []any{map[string]any{"url": sysCertFP, "valueString": ev.Who.CertFP}}
	}
	res["agent"] = []any{agent}
	src := map[string]any{"type": []coding{{sysSourceType, "4", "Application Server"}}}
	if ev.Who.Org != "" {
		src["observer"] = map[string]any{"identifier": map[string]string{"system": sysOrg, "value": ev.Who.Org}}
	} else {
		src["observer"] = map[string]any{"display": "phix"}
	}
	res["source"] = src

	var ents []any
	if ev.What.Patient != "" {
		ents = append(ents, map[string]any{
			"what": map[string]any{"type": "Patient", "identifier": map[string]string{"system": sysPseudonym, "value": ev.What.Patient}},
			"type": coding{sysEntityType, "1", "Person"},
			"role": coding{sysObjectRole, "1", "Patient"},
		})
	}
	if ev.What.ResourceID != "" || ev.What.ResourceType != "" {
		e := map[string]any{
			"type": coding{sysEntityType, "2", "System Object"},
			"role": coding{sysObjectRole, "4", "Domain Resource"},
		}
		what := map[string]any{}
		if ev.What.ResourceType != "" {
			what["type"] = ev.What.ResourceType
		}
		if ev.What.ResourceID != "" {
			what["identifier"] = map[string]string{"system": sysPseudonym, "value": ev.What.ResourceID}
		}
		e["what"] = what
		var details []any
		if ev.What.QueryHash != "" {
			details = append(details, map[string]any{"type": "query-hash", "valueString": ev.What.QueryHash})
		}
		if len(ev.What.QueryParams) > 0 {
			details = append(details, map[string]any{"type": "query-params", "valueString": strings.Join(ev.What.QueryParams, ",")})
		}
		if ev.PayloadHash != "" {
			details = append(details, map[string]any{"type": "payload-hash", "valueString": ev.PayloadHash})
		}
		if ev.What.Entries > 0 {
			details = append(details, map[string]any{"type": "entries", "valueString": strconv.Itoa(ev.What.Entries)})
		}
		if ev.What.TargetsHash != "" {
			details = append(details, map[string]any{"type": "targets-hash", "valueString": ev.What.TargetsHash})
		}
		if details != nil {
			e["detail"] = details
		}
		if ev.DataClass != "" {
			e["securityLabel"] = []coding{{sysDataClass, ev.DataClass, ""}}
		}
		if ev.Action == ActionSearch {
			e["role"] = coding{sysObjectRole, "24", "Query"}
		}
		ents = append(ents, e)
	}
	if ev.Why != nil && ev.Why.ConsentID != "" {
		ents = append(ents, map[string]any{
			"what": map[string]any{"type": "Consent", "identifier": map[string]string{"system": sysConsent, "value": ev.Why.ConsentID}},
			"type": coding{sysEntityType, "2", "System Object"},
			"role": coding{sysObjectRole, "4", "Domain Resource"},
		})
	}
	if ev.RequestID != "" {
		ents = append(ents, map[string]any{
			"what": map[string]any{"identifier": map[string]string{"system": sysRequestID, "value": ev.RequestID}},
			"type": coding{sysBALPEntity, "XrequestId", "X-Request-Id"},
		})
	}
	if ents != nil {
		res["entity"] = ents
	}
	if ev.Decision != nil {
		res["outcomeDesc"] = "policy decision: " + ev.Decision.Effect
	}
	return res
}

// writeOutcome writes a FHIR OperationOutcome with a stable code.
func writeOutcome(w http.ResponseWriter, status int, issueType, code, text string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{
			"severity":    "error",
			"code":        issueType,
			"details":     map[string]any{"coding": []coding{{sysError, code, text}}, "text": text},
			"diagnostics": text,
		}},
	})
}

// Paging limits of the AuditEvent search.
const (
	DefaultAuditEventCount = 50
	MaxAuditEventCount     = 1000
)

// AuditEventHandler serves the read-only FHIR AuditEvent API, mounted by the
// FHIR server at /fhir/r4/AuditEvent:
//
//	GET .../AuditEvent/{id}   one event (id = leaf index)
//	GET .../AuditEvent?...    a searchset Bundle; parameters patient, date, agent,
//	                          type, subtype, outcome, entity, _count (paging via next links)
//
// Every other method answers 405 with an OperationOutcome. Requests pass
// Options.Authorizer first.
func (l *Log) AuditEventHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.authorize(w, r, true) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeOutcome(w, http.StatusMethodNotAllowed, "not-supported", CodeMethodNotAllowed, "AuditEvent is read-only")
			return
		}
		path := strings.TrimSuffix(r.URL.Path, "/")
		i := strings.LastIndex(path, "/AuditEvent")
		if i < 0 {
			writeOutcome(w, http.StatusNotFound, "not-found", CodeNotFound, "not an AuditEvent path")
			return
		}
		rest := path[i+len("/AuditEvent"):]
		switch {
		case rest == "" || rest == "/_search":
			l.serveAuditSearch(w, r)
		case strings.Count(rest, "/") == 1:
			l.serveAuditRead(w, r, rest[1:])
		default:
			writeOutcome(w, http.StatusNotFound, "not-found", CodeNotFound, "not an AuditEvent path")
		}
	})
}

func (l *Log) serveAuditRead(w http.ResponseWriter, r *http.Request, id string) {
	idx, ok := parseIndex(id)
	if !ok {
		writeOutcome(w, http.StatusNotFound, "not-found", CodeNotFound, "no such AuditEvent")
		return
	}
	rec, err := l.b.Event(r.Context(), idx)
	if errors.Is(err, ErrNotFound) || (err == nil && rec.Body == nil) {
		writeOutcome(w, http.StatusNotFound, "not-found", CodeNotFound, "no such AuditEvent (or pruned by retention)")
		return
	}
	if err != nil {
		writeOutcome(w, http.StatusInternalServerError, "exception", CodeInternal, "cannot read the audit log")
		return
	}
	var ev Event
	if err := json.Unmarshal(rec.Body, &ev); err != nil {
		writeOutcome(w, http.StatusInternalServerError, "exception", CodeInternal, "stored event does not parse")
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(RenderAuditEvent(&ev))
}

// searchError is a 400 on the AuditEvent search.
type searchError string

func (e searchError) Error() string { return string(e) }

// typeActions maps type tokens to actions.
func typeActions(tok string) ([]string, error) {
	_, code, _ := cutToken(tok)
	switch code {
	case "rest":
		var out []string
		for a := range restInfo {
			out = append(out, string(a))
		}
		sort.Strings(out)
		return out, nil
	case "110113":
		return []string{string(ActionConsent), string(ActionSecurityAlert)}, nil
	case "110114":
		return []string{string(ActionLogin)}, nil
	case "110106":
		return []string{string(ActionTransfer), string(ActionExport)}, nil
	}
	return nil, searchError("unknown type code")
}

// subtypeFilter maps a subtype token to actions or alert kinds.
func subtypeFilter(tok string) (actions, alertKinds []string, err error) {
	_, code, _ := cutToken(tok)
	for a, ri := range restInfo {
		if ri.sub == code {
			actions = append(actions, string(a))
		}
	}
	if code == "search-type" || code == "search-system" {
		actions = append(actions, string(ActionSearch))
	}
	switch {
	case actions != nil:
		sort.Strings(actions)
		return actions, nil, nil
	case code == "AuthZ-Consent":
		return []string{string(ActionConsent)}, nil, nil
	case code == "110122":
		return []string{string(ActionLogin)}, nil, nil
	case code == "110127":
		return nil, []string{string(AlertBreakGlass)}, nil
	case alerts[AlertKind(code)]:
		return nil, []string{code}, nil
	case code == string(ActionTransfer) || code == string(ActionExport):
		return []string{code}, nil, nil
	}
	return nil, nil, searchError("unknown subtype code")
}

func cutToken(tok string) (system, code string, hasSystem bool) {
	if s, c, ok := strings.Cut(tok, "|"); ok {
		return s, c, true
	}
	return "", tok, false
}

// pseudonymParam maps a reference or pseudonym search value to a pseudonym.
func (l *Log) pseudonymParam(v, wantType string) (string, error) {
	if IsPseudonym(v) {
		return v, nil
	}
	if l.opts.Pseudonyms == nil {
		return "", searchError("only pseudonyms are accepted here (no pseudonymisation key configured)")
	}
	if wantType == "user" {
		return l.opts.Pseudonyms.User(v), nil
	}
	if wantType != "" && !strings.Contains(v, "/") {
		v = wantType + "/" + v
	}
	p, ok := l.opts.Pseudonyms.Reference(v)
	if !ok {
		return "", searchError("not a Type/id reference")
	}
	return p, nil
}

// parseAuditQuery turns the FHIR search parameters into a Query and the
// normalised (pseudonymous) parameters for the next link.
func (l *Log) parseAuditQuery(vals url.Values) (Query, url.Values, error) {
	var q Query
	norm := url.Values{}
	q.Limit = DefaultAuditEventCount
	for name, vs := range vals {
		for _, v := range vs {
			switch name {
			case "patient", "entity":
				typ := ""
				if name == "patient" {
					typ = "Patient"
				}
				p, err := l.pseudonymParam(v, typ)
				if err != nil {
					return q, nil, err
				}
				if name == "patient" {
					q.Patient = p
				} else {
					q.Entity = p
				}
				norm.Set(name, p)
			case "agent":
				p, err := l.pseudonymParam(v, "user")
				if err != nil {
					return q, nil, err
				}
				q.Agent = p
				norm.Set(name, p)
			case "type":
				as, err := typeActions(v)
				if err != nil {
					return q, nil, err
				}
				q.Actions = intersect(q.Actions, as)
				norm.Add(name, v)
			case "subtype":
				as, al, err := subtypeFilter(v)
				if err != nil {
					return q, nil, err
				}
				if as != nil {
					q.Actions = intersect(q.Actions, as)
				}
				if al != nil {
					q.Alerts = al
					q.Actions = intersect(q.Actions, []string{string(ActionSecurityAlert)})
				}
				norm.Add(name, v)
			case "outcome":
				var outs []string
				for _, code := range strings.Split(v, ",") {
					_, code, _ = cutToken(code)
					found := false
					for o, c := range outcomes {
						if c == code {
							outs = append(outs, string(o))
							found = true
						}
					}
					if !found {
						return q, nil, searchError("outcome must be 0, 4, 8 or 12")
					}
				}
				q.Outcomes = outs
				norm.Add(name, v)
			case "date":
				if err := applyDate(&q, v); err != nil {
					return q, nil, err
				}
				norm.Add(name, v)
			case "_count":
				n, ok := parseIndex(v)
				if !ok || n == 0 || n > MaxAuditEventCount {
					return q, nil, searchError("_count must be between 1 and 1000")
				}
				q.Limit = int(n)
				norm.Set(name, v)
			case "_cursor":
				n, ok := parseIndex(v)
				if !ok {
					return q, nil, searchError("malformed _cursor")
				}
				q.Before = n
			case "_format":
				if v != "json" && v != "application/fhir+json" && v != "application/json" {
					return q, nil, searchError("only JSON is supported")
				}
			default:
				return q, nil, searchError("unsupported search parameter")
			}
		}
	}
	if q.Actions != nil && len(q.Actions) == 0 {
		q.Actions = []string{"-none-"} // contradictory filters match nothing
	}
	return q, norm, nil
}

func intersect(cur, add []string) []string {
	if cur == nil {
		return add
	}
	out := []string{}
	for _, a := range cur {
		for _, b := range add {
			if a == b {
				out = append(out, a)
			}
		}
	}
	return out
}

// applyDate adds one date parameter (prefix eq, ge, gt, le, lt; precision
// year to instant) to q.
func applyDate(q *Query, v string) error {
	prefix := "eq"
	if len(v) > 2 && isAlpha(v[0]) && isAlpha(v[1]) {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, err := dateRange(v)
	if err != nil {
		return err
	}
	later := func(t time.Time) {
		if q.Since.IsZero() || t.After(q.Since) {
			q.Since = t
		}
	}
	earlier := func(t time.Time) {
		if q.Until.IsZero() || t.Before(q.Until) {
			q.Until = t
		}
	}
	switch prefix {
	case "eq":
		later(lo)
		earlier(hi)
	case "ge":
		later(lo)
	case "gt":
		later(hi)
	case "le":
		earlier(hi)
	case "lt":
		earlier(lo)
	default:
		return searchError("unsupported date prefix")
	}
	return nil
}

// dateRange returns [lo, hi) covered by a FHIR date/dateTime of any precision.
func dateRange(v string) (time.Time, time.Time, error) {
	layouts := []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
	}
	for _, lay := range layouts {
		if t, err := time.Parse(lay.layout, v); err == nil {
			return t, lay.step(t), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, t.Add(time.Microsecond), nil
	}
	return time.Time{}, time.Time{}, searchError("malformed date")
}

func (l *Log) serveAuditSearch(w http.ResponseWriter, r *http.Request) {
	q, norm, err := l.parseAuditQuery(r.URL.Query())
	if err != nil {
		var se searchError
		msg := "invalid search"
		if errors.As(err, &se) {
			msg = string(se)
		}
		writeOutcome(w, http.StatusBadRequest, "invalid", CodeBadParameter, msg)
		return
	}
	limit := q.Limit
	q.Limit = limit + 1
	recs, err := l.b.Search(r.Context(), q)
	if err != nil {
		writeOutcome(w, http.StatusInternalServerError, "exception", CodeInternal, "cannot search the audit log")
		return
	}
	base := "AuditEvent"
	if i := strings.LastIndex(r.URL.Path, "/AuditEvent"); i >= 0 {
		base = r.URL.Path[:i+len("/AuditEvent")]
	}
	entries := make([]any, 0, min(len(recs), limit))
	for i, rec := range recs {
		if i == limit {
			break
		}
		var ev Event
		if err := json.Unmarshal(rec.Body, &ev); err != nil {
			writeOutcome(w, http.StatusInternalServerError, "exception", CodeInternal, "stored event does not parse")
			return
		}
		entries = append(entries, map[string]any{
			"fullUrl":  base + "/" + strconv.FormatInt(rec.Index, 10),
			"resource": RenderAuditEvent(&ev),
			"search":   map[string]string{"mode": "match"},
		})
	}
	links := []any{map[string]string{"relation": "self", "url": base + "?" + norm.Encode()}}
	if len(recs) > limit {
		next := url.Values{}
		for k, v := range norm {
			next[k] = v
		}
		next.Set("_cursor", strconv.FormatInt(recs[limit-1].Index, 10))
		links = append(links, map[string]string{"relation": "next", "url": base + "?" + next.Encode()})
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"resourceType": "Bundle",
		"type":         "searchset",
		"link":         links,
		"entry":        entries,
	})
}
