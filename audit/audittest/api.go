package audittest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"phix/audit"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header
}

func testHTTP(t *testing.T, f Factory) {
	h := f(t)
	ctx := context.Background()
	p := Pseudonyms(t)
	l := OpenLog(t, h.Open(t), nil)
	defer l.Close()
	srv := httptest.NewServer(audit.Handler(l))
	defer srv.Close()

	if code, _, _ := get(t, srv, "GET", "/audit/checkpoint"); code != http.StatusNotFound {
		t.Fatalf("checkpoint of empty log: %d", code)
	}
	for i := 0; i < 25; i++ {
		if _, err := l.Append(ctx, SampleEvent(p, i, audit.ActionSearch)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Page through the feed.
	var all []audit.FeedEvent
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		path := "/audit/events?limit=10"
		if cursor != "" {
			path += "&after=" + cursor
		}
		code, body, hdr := get(t, srv, "GET", path)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			t.Fatalf("feed: %d %s", code, body)
		}
		var feed audit.Feed
		if err := json.Unmarshal(body, &feed); err != nil {
			t.Fatal(err)
		}
		if len(feed.Events) == 0 {
			break
		}
		all = append(all, feed.Events...)
		cursor = feed.Next
	}
	if len(all) != 25 {
		t.Fatalf("feed returned %d events, want 25", len(all))
	}
	for i, e := range all {
		if e.Index != int64(i) || e.Event == nil {
			t.Fatalf("feed entry %d has index %d", i, e.Index)
		}
	}

	code, body, _ := get(t, srv, "GET", "/audit/checkpoint")
	if code != 200 {
		t.Fatalf("checkpoint: %d", code)
	}
	v, _ := audit.ParseVerifier(l.Signer().VerifierKey())
	if c, err := audit.OpenCheckpoint(body, []*audit.Verifier{v}); err != nil || c.Size != 25 {
		t.Fatalf("checkpoint: %+v %v", c, err)
	}
	code, body, _ = get(t, srv, "GET", "/audit/proof/inclusion?index=7")
	if code != 200 {
		t.Fatalf("inclusion: %d %s", code, body)
	}
	var ip audit.InclusionProof
	if err := json.Unmarshal(body, &ip); err != nil {
		t.Fatal(err)
	}
	if err := audit.CheckInclusion(&ip, []*audit.Verifier{v}); err != nil {
		t.Fatalf("inclusion over HTTP: %v", err)
	}
	code, body, _ = get(t, srv, "GET", "/audit/proof/consistency?from=3&to=25")
	var cp audit.ConsistencyProof
	if code != 200 || json.Unmarshal(body, &cp) != nil || audit.CheckConsistency(&cp) != nil {
		t.Fatalf("consistency over HTTP: %d %s", code, body)
	}

	bad := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/audit/events?after=abc", 400, audit.CodeBadCursor},
		{"GET", "/audit/events?after=-5", 400, audit.CodeBadCursor},
		{"GET", "/audit/events?after=99999999999999999999999", 400, audit.CodeBadCursor},
		{"GET", "/audit/events?limit=1000000", 400, audit.CodeBadLimit},
		{"GET", "/audit/events?limit=0", 400, audit.CodeBadLimit},
		{"GET", "/audit/proof/inclusion?index=25", 400, audit.CodeOutOfRange},
		{"GET", "/audit/proof/inclusion?index=3&size=26", 400, audit.CodeOutOfRange},
		{"GET", "/audit/proof/inclusion?index=x", 400, audit.CodeBadParameter},
		{"GET", "/audit/proof/consistency?from=0&to=5", 400, audit.CodeOutOfRange},
		{"GET", "/audit/proof/consistency?from=9&to=5", 400, audit.CodeOutOfRange},
		{"GET", "/audit/proof/consistency?from=1", 400, audit.CodeBadParameter},
		{"GET", "/audit/nothing", 404, audit.CodeNotFound},
		{"POST", "/audit/events", 405, audit.CodeMethodNotAllowed},
		{"DELETE", "/audit/checkpoint", 405, audit.CodeMethodNotAllowed},
	}
	for _, tc := range bad {
		code, body, hdr := get(t, srv, tc.method, tc.path)
		var pr struct{ Code string }
		_ = json.Unmarshal(body, &pr)
		if code != tc.status || pr.Code != tc.code || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, code, body, tc.status, tc.code)
		}
	}

	// Authorizer: nil refuses everything, ErrForbidden gives 403.
	for _, c := range []struct {
		auth audit.Authorizer
		want int
	}{
		{nil, 401},
		{func(*http.Request) error { return errors.New("no token") }, 401},
		{func(*http.Request) error { return audit.ErrForbidden }, 403},
	} {
		l2 := OpenLog(t, h.Open(t), func(o *audit.Options) { o.Authorizer = c.auth })
		s2 := httptest.NewServer(audit.Handler(l2))
		if code, _, _ := get(t, s2, "GET", "/audit/events"); code != c.want {
			t.Errorf("feed without authorization: %d, want %d", code, c.want)
		}
		s3 := httptest.NewServer(l2.AuditEventHandler())
		if code, _, _ := get(t, s3, "GET", "/fhir/r4/AuditEvent"); code != c.want {
			t.Errorf("AuditEvent without authorization: %d, want %d", code, c.want)
		}
		s2.Close()
		s3.Close()
		_ = l2.Close()
	}
}

type bundle struct {
	ResourceType string
	Link         []struct{ Relation, URL string }
	Entry        []struct {
		FullURL  string
		Resource map[string]any
	}
}

func search(t *testing.T, srv *httptest.Server, query string) bundle {
	t.Helper()
	code, body, _ := get(t, srv, "GET", "/fhir/r4/AuditEvent?"+query)
	if code != 200 {
		t.Fatalf("search %q: %d %s", query, code, body)
	}
	var b bundle
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
		t.Fatalf("search %q: not a Bundle", query)
	}
	return b
}

func testAuditEventAPI(t *testing.T, f Factory) {
	h := f(t)
	ctx := context.Background()
	p := Pseudonyms(t)
	l := OpenLog(t, h.Open(t), func(o *audit.Options) { o.Pseudonyms = p })
	defer l.Close()
	srv := httptest.NewServer(l.AuditEventHandler())
	defer srv.Close()
	start := time.Now().UTC()
	acts := []audit.Action{audit.ActionRead, audit.ActionSearch, audit.ActionCreate, audit.ActionUpdate,
		audit.ActionDelete, audit.ActionConsent, audit.ActionSecurityAlert}
	for i := 0; i < 35; i++ {
		ev := SampleEvent(p, i, acts[i%len(acts)])
		if i%5 == 4 {
			ev.Outcome = audit.OutcomeSeriousFailure
		}
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Read by id, and the BALP shape.
	code, body, _ := get(t, srv, "GET", "/fhir/r4/AuditEvent/5")
	if code != 200 {
		t.Fatalf("read: %d %s", code, body)
	}
	var ae map[string]any
	_ = json.Unmarshal(body, &ae)
	if ae["resourceType"] != "AuditEvent" || ae["id"] != "5" {
		t.Fatalf("read: %s", body)
	}
	if !strings.Contains(string(body), "IHE.BasicAudit.AuthZconsent") || !strings.Contains(string(body), "AuthZ-Consent") {
		t.Fatalf("consent event not rendered as BALP AuthZconsent: %s", body)
	}
	code, body, _ = get(t, srv, "GET", "/fhir/r4/AuditEvent/0")
	if code != 200 || !strings.Contains(string(body), "IHE.BasicAudit.PatientRead") || !strings.Contains(string(body), `"action":"R"`) {
		t.Fatalf("read event not rendered as BALP PatientRead: %s", body)
	}
	code, body, _ = get(t, srv, "GET", "/fhir/r4/AuditEvent/6")
	if code != 200 || !strings.Contains(string(body), `"110113"`) || !strings.Contains(string(body), "110127") {
		t.Fatalf("security alert rendering: %s", body)
	}
	if code, _, _ := get(t, srv, "GET", "/fhir/r4/AuditEvent/999"); code != 404 {
		t.Fatalf("missing id: %d", code)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		code, body, _ := get(t, srv, m, "/fhir/r4/AuditEvent/1")
		if code != 405 || !strings.Contains(string(body), "OperationOutcome") {
			t.Fatalf("%s: %d %s", m, code, body)
		}
	}
	if code, body, _ := get(t, srv, "POST", "/fhir/r4/AuditEvent"); code != 405 || !strings.Contains(string(body), "OperationOutcome") {
		t.Fatalf("POST type: %d", code)
	}

	count := func(q string) int {
		t.Helper()
		n := 0
		b := search(t, srv, q)
		for {
			n += len(b.Entry)
			next := ""
			for _, ln := range b.Link {
				if ln.Relation == "next" {
					next = ln.URL
				}
			}
			if next == "" {
				return n
			}
			u, err := url.Parse(next)
			if err != nil {
				t.Fatal(err)
			}
			b = search(t, srv, u.RawQuery)
		}
	}
	// SampleEvent: patient pat-(i%5), user user-(i%3), entity obs-i.
	cases := []struct {
		q    string
		want int
	}{
		{"", 35},
		{"_count=4", 35},
		{"patient=Patient/pat-2", 7},
		{"patient=pat-2&_count=2", 7},
		{"patient=" + url.QueryEscape(p.Patient("pat-2")), 7},
		{"agent=user-1", 12},
		{"entity=Observation/obs-9", 1},
		{"type=rest", 25},
		{"type=http://dicom.nema.org/resources/ontology/DCM%7C110113", 10},
		{"subtype=read", 5},
		{"subtype=AuthZ-Consent", 5},
		{"subtype=110127", 5},
		{"outcome=8", 7},
		{"outcome=0&type=rest&_count=3", 20},
		{"date=ge" + start.Add(-time.Minute).Format(time.RFC3339), 35},
		{"date=lt" + start.Add(-time.Minute).Format(time.RFC3339), 0},
		{"date=" + start.Format("2006"), 35},
		{"type=rest&subtype=AuthZ-Consent", 0},
	}
	for _, c := range cases {
		if got := count(c.q); got != c.want {
			t.Errorf("search %q: %d results, want %d", c.q, got, c.want)
		}
	}
	// Paging: next links carry pseudonyms, never the raw reference.
	b := search(t, srv, "patient=Patient/pat-2&_count=2")
	for _, ln := range b.Link {
		if strings.Contains(ln.URL, "pat-2") {
			t.Fatalf("link carries the raw reference: %s", ln.URL)
		}
	}
	for _, q := range []string{"_count=5000", "_count=abc", "date=yesterday", "outcome=3", "type=bogus",
		"subtype=bogus", "name=Smith", "patient=not%20a%20ref", "_cursor=x", "date=zz2020"} {
		code, body, _ := get(t, srv, "GET", "/fhir/r4/AuditEvent?"+q)
		if code != 400 || !strings.Contains(string(body), "OperationOutcome") {
			t.Errorf("bad search %q: %d %s", q, code, body)
		}
	}
	_ = strconv.Itoa
}
