package fhirserver

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/audit/audittest"
	"phix/suite"
)

// auditEnv is a server with the audit log on, plus an auditor token.
type auditEnv struct {
	*env
	log     *audit.Log
	ps      *audit.Pseudonymizer
	auditor string
	dbPath  string
}

func newAuditEnv(t testing.TB) *auditEnv {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "audit.db")
	b, err := auditsqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ps := audittest.Pseudonyms(t)
	auditorTok, _ := NewToken()
	var l *audit.Log
	e := newEnv(t, openSQLite(t), func(c *Config) {
		st := c.Auth.(*StaticTokens)
		if err := st.AddAuditorTokens(auditorTok); err != nil {
			t.Fatal(err)
		}
		opened, err := audit.Open(ctx, b, audit.Options{
			Origin: "test.phix/audit", Signer: audittest.SigningKey(t, suite.Intl),
			Pseudonyms: ps, Authorizer: AuditAuthorizer(c.Auth), PruneInterval: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		l = opened
		c.Audit, c.AuditPseudonyms = l, ps
	})
	t.Cleanup(func() { l.Close() })
	return &auditEnv{env: e, log: l, ps: ps, auditor: auditorTok, dbPath: dbPath}
}

// events syncs the log and returns every event in order.
func (a *auditEnv) events(t testing.TB) []audit.Event {
	t.Helper()
	if _, err := a.log.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	after := int64(-1)
	for {
		f, err := a.log.Feed(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, fe := range f.Events {
			ev, err := audit.ParseEvent(fe.Event)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		}
		if len(f.Events) == 0 {
			return out
		}
		after = f.Events[len(f.Events)-1].Index
	}
}

// TestAuditEvents: each interaction leaves the right event: action, type,
// pseudonymous id, outcome and the response's request id.
func TestAuditEvents(t *testing.T) {
	a := newAuditEnv(t)
	created := a.do("POST", "/Patient", patient("Auditee", "Alice")).want(t, 201)
	id := created.str("id")
	steps := []struct {
		name    string
		method  string
		path    string
		body    any
		status  int
		action  audit.Action
		outcome audit.Outcome
		id      string
		params  []string
	}{
		{"read", "GET", "/Patient/" + id, nil, 200, audit.ActionRead, audit.OutcomeSuccess, id, nil},
		{"search", "GET", "/Patient?family=Auditee&_count=5", nil, 200, audit.ActionSearch, audit.OutcomeSuccess, "", []string{"_count", "family"}},
		{"update", "PUT", "/Patient/" + id, map[string]any{"resourceType": "Patient", "id": id, "active": true}, 200, audit.ActionUpdate, audit.OutcomeSuccess, id, nil},
		{"read missing", "GET", "/Patient/nope", nil, 404, audit.ActionRead, audit.OutcomeMinorFailure, "nope", nil},
		{"delete", "DELETE", "/Patient/" + id, nil, 200, audit.ActionDelete, audit.OutcomeSuccess, id, nil},
		{"history", "GET", "/Patient/" + id + "/_history", nil, 200, audit.ActionHistory, audit.OutcomeSuccess, id, nil},
	}
	rids := []string{created.header.Get("X-Request-Id")}
	for _, s := range steps {
		r := a.do(s.method, s.path, s.body)
		if r.status != s.status && !(s.method == "DELETE" && r.status == 204) {
			t.Fatalf("%s: status %d", s.name, r.status)
		}
		rids = append(rids, r.header.Get("X-Request-Id"))
	}
	// Reads are recorded as their handler returns, which can be just after
	// the client has the whole response; wait (bounded) for the last one.
	evs := a.events(t)
	for deadline := time.Now().Add(5 * time.Second); len(evs) < len(steps)+1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		evs = a.events(t)
	}
	if len(evs) != len(steps)+1 {
		t.Fatalf("%d events, want %d", len(evs), len(steps)+1)
	}
	byRID := map[string]audit.Event{}
	for _, ev := range evs {
		byRID[ev.RequestID] = ev
	}
	check := func(name, rid string, action audit.Action, outcome audit.Outcome, rid2 string, params []string) {
		t.Helper()
		ev, ok := byRID[rid]
		if !ok {
			t.Fatalf("%s: no event for request %s", name, rid)
		}
		if ev.Action != action || ev.Outcome != outcome || ev.What.ResourceType != "Patient" {
			t.Fatalf("%s: event %+v", name, ev)
		}
		if rid2 != "" && (ev.What.ResourceID != a.ps.Patient(rid2) || ev.What.Patient != a.ps.Patient(rid2)) {
			t.Fatalf("%s: resource pseudonym %q", name, ev.What.ResourceID)
		}
		if ev.Who.User == "" || ev.Who.Role != string(RoleClinician) {
			t.Fatalf("%s: who %+v", name, ev.Who)
		}
		if strings.Join(ev.What.QueryParams, ",") != strings.Join(params, ",") {
			t.Fatalf("%s: params %v, want %v", name, ev.What.QueryParams, params)
		}
		if params != nil && len(ev.What.QueryHash) != 64 {
			t.Fatalf("%s: no query hash", name)
		}
	}
	check("create", rids[0], audit.ActionCreate, audit.OutcomeSuccess, id, nil)
	for i, s := range steps {
		check(s.name, rids[i+1], s.action, s.outcome, s.id, s.params)
	}
	// No event carries the search value or the name.
	raw, _ := json.Marshal(evs)
	for _, phi := range []string{"Auditee", "Alice", id} {
		if strings.Contains(string(raw), phi) {
			t.Fatalf("audit events contain %q", phi)
		}
	}
}

// TestAuditSeparationOfDuties: the auditor token reads /audit/ and
// AuditEvent only; the clinician token gets 403 there; a missing token 401.
func TestAuditSeparationOfDuties(t *testing.T) {
	a := newAuditEnv(t)
	a.do("POST", "/Patient", patient("Sep", "Duty")).want(t, 201)
	if _, err := a.log.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	get := func(path, tok string) int {
		req, _ := http.NewRequest("GET", a.srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct {
		path, tok string
		want      int
	}{
		{"/audit/events", a.auditor, 200},
		{"/audit/checkpoint", a.auditor, 200},
		{BasePath + "/AuditEvent", a.auditor, 200},
		{BasePath + "/AuditEvent/0", a.auditor, 200},
		{"/audit/events", a.token, 403},
		{BasePath + "/AuditEvent", a.token, 403},
		{BasePath + "/AuditEvent/0", a.token, 403},
		{BasePath + "/Patient", a.auditor, 403},
		{BasePath + "/Patient", a.token, 200},
		{"/audit/events", "", 401},
		{BasePath + "/AuditEvent", "not-a-valid-token-at-all", 401},
	} {
		if got := get(c.path, c.tok); got != c.want {
			t.Errorf("GET %s (%s): %d, want %d", c.path, tokenKind(a, c.tok), got, c.want)
		}
	}
	// The refusals are security events.
	var alerts int
	for _, ev := range a.events(t) {
		if ev.Action == audit.ActionSecurityAlert {
			alerts++
		}
	}
	if alerts == 0 {
		t.Fatal("no security-alert events for the refusals")
	}
}

func tokenKind(a *auditEnv, tok string) string {
	switch tok {
	case a.auditor:
		return "auditor"
	case a.token:
		return "clinician"
	}
	return "other"
}

// TestAuditNoSyntheaPHI imports the Synthea bundles, searches for every
// patient by name, identifier and phone, then scans the audit database files
// and the /audit/events feed: no name, identifier, phone or address may
// appear (names and cities as whole words, since short names occur by
// chance inside base64; the rest as substrings).
func TestAuditNoSyntheaPHI(t *testing.T) {
	bundles := raceSubset(syntheaBundles(t))
	a := newAuditEnv(t)
	var words, subs []string
	for name, data := range bundles {
		r := a.do("POST", "", data, "Prefer", "return=minimal")
		if r.status != 200 {
			t.Fatalf("import %s: %d", name, r.status)
		}
		w, s := syntheaPHI(t, data)
		words, subs = append(words, w...), append(subs, s...)
		for _, v := range s {
			a.do("GET", "/Patient?identifier="+urlQuery(v), nil)
		}
		for _, v := range w {
			a.do("GET", "/Patient?name="+urlQuery(v), nil)
		}
	}
	if len(words) == 0 || len(subs) == 0 {
		t.Fatal("no PHI needles found in the Synthea bundles")
	}
	if _, err := a.log.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var scanned [][]byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, err := readFileIfExists(a.dbPath + suffix); err == nil && b != nil {
			scanned = append(scanned, b)
		}
	}
	// The feed, as the auditor reads it.
	after := ""
	for {
		r := a.doAs(a.auditor, "GET", "/audit/events?limit=1000&after="+after)
		if r.status != 200 {
			t.Fatalf("feed: %d", r.status)
		}
		scanned = append(scanned, r.body)
		var f audit.Feed
		if err := json.Unmarshal(r.body, &f); err != nil {
			t.Fatal(err)
		}
		if len(f.Events) == 0 {
			break
		}
		after = f.Next
	}
	r := a.doAs(a.auditor, "GET", BasePath+"/AuditEvent?_count=1000")
	scanned = append(scanned, r.body)
	// The scanner must be able to find PHI at all.
	var sample []byte
	for _, d := range bundles {
		sample = d
		break
	}
	if hits := findPHI([][]byte{sample}, words, subs); len(hits) == 0 {
		t.Fatal("scanner finds nothing in a raw bundle")
	}
	if hits := findPHI(scanned, words, subs); len(hits) > 0 {
		t.Fatalf("%d PHI values found in the audit trail", len(hits))
	}
}
