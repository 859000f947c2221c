package audittest

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"phix/audit"
	"phix/internal/testenv"
)

// needles are the PHI values of the Synthea patients.
type needles struct {
	words  map[string]bool // names, cities: matched as whole words
	values map[string]bool // identifiers, phones, address lines: matched as substrings
}

type synResource struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Name         []struct {
		Family string `json:"family"`
	} `json:"name"`
}

// events builds what a FHIR server appends when importing every resource of
// the Synthea bundles (a create per resource) and when clinicians search for
// each patient by name (the server passes a keyed hash of the query and the
// parameter names, never the values).
func syntheaEvents(t *testing.T, p *audit.Pseudonymizer) ([]audit.Event, needles, [][]byte) {
	nd := needles{words: map[string]bool{}, values: map[string]bool{}}
	var evs []audit.Event
	var raw [][]byte
	for _, bundle := range testenv.SyntheaBundles(t) {
		raw = append(raw, bundle.Data)
		phi := testenv.SyntheaPHI(t, bundle.Data)
		for _, w := range phi.Words {
			if len(w) >= 3 {
				nd.words[w] = true
			}
		}
		for _, v := range phi.Values {
			nd.values[v] = true
		}
		var patient string
		for _, res := range bundle.Entries(t) {
			var r synResource
			var head struct{ ResourceType, ID string }
			if err := json.Unmarshal(res, &head); err != nil {
				t.Fatal(err)
			}
			r.ResourceType, r.ID = head.ResourceType, head.ID
			if r.ResourceType == "Patient" {
				if err := json.Unmarshal(res, &r); err != nil {
					t.Fatal(err)
				}
				patient = r.ID
				for _, n := range r.Name {
					q := "name=" + n.Family
					evs = append(evs, audit.Event{
						Action: audit.ActionSearch, Outcome: audit.OutcomeSuccess,
						Who:  audit.Who{User: p.User("dr-smith-subject"), Org: "hospital-a", Role: "clinician"},
						What: audit.What{ResourceType: "Patient", QueryHash: p.QueryHash(q), QueryParams: []string{"name"}},
						Why:  &audit.Why{Purpose: "TREAT"},
					})
				}
			}
			ev := audit.Event{
				Action: audit.ActionCreate, Outcome: audit.OutcomeSuccess, DataClass: "clinical",
				RequestID: "import-batch",
				Who:       audit.Who{User: p.User("importer"), Org: "hospital-a", Role: "system"},
				What:      audit.What{ResourceType: r.ResourceType, ResourceID: p.Resource(r.ResourceType, r.ID)},
				Decision:  &audit.Decision{Effect: "permit", Policies: []string{"import.bulk"}},
			}
			if patient != "" {
				ev.What.Patient = p.Patient(patient)
			}
			evs = append(evs, ev)
		}
	}
	return evs, nd, raw
}

// containsDelimited reports whether w occurs in s between text delimiters
// (a quote, a space or a comma on either side).
func containsDelimited(s, w string) bool {
	delim := func(c byte) bool { return c == '"' || c == ' ' || c == ',' || c == '\n' }
	for off := 0; ; {
		i := strings.Index(s[off:], w)
		if i < 0 {
			return false
		}
		i += off
		if (i == 0 || delim(s[i-1])) && (i+len(w) == len(s) || delim(s[i+len(w)])) {
			return true
		}
		off = i + 1
	}
}

// findPHI returns the kinds of PHI found in data (never the values, which
// must not reach the test log either).
func (nd needles) find(data []byte) []string {
	s := string(data)
	var found []string
	for w := range nd.words {
		// A three-letter name occurs by chance in the random bytes of the
		// tree hashes (about once per 3e7 positions) as a "word"; real text
		// is delimited by quotes or spaces, so short names must be too.
		if len(w) < 4 && !containsDelimited(s, w) {
			continue
		}
		if testenv.ContainsWord(s, w) {
			found = append(found, "name or city")
		}
	}
	for v := range nd.values {
		if strings.Contains(s, v) {
			found = append(found, "identifier, phone or address line")
		}
	}
	return found
}

func testNoPHI(t *testing.T, f Factory) {
	h := f(t)
	if h.Dump == nil {
		t.Skip("backend harness has no raw dump")
	}
	ctx := context.Background()
	p := Pseudonyms(t)
	evs, nd, raw := syntheaEvents(t, p)
	if got := nd.find(raw[0]); len(got) == 0 {
		t.Fatal("the scanner finds no PHI in a raw Synthea bundle: it cannot work")
	}
	b := h.Open(t)
	l := OpenLog(t, b, func(o *audit.Options) { o.Pseudonyms = p })
	for _, ev := range evs {
		if err := l.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append(ctx, evs[0]); err != nil { // waits for everything queued before it
		t.Fatal(err)
	}
	if _, err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(what string, data []byte) {
		t.Helper()
		if found := nd.find(data); len(found) > 0 {
			t.Errorf("%s contains PHI: %d values (%s)", what, len(found), found[0])
		}
	}
	srv := httptest.NewServer(audit.Handler(l))
	defer srv.Close()
	pages := 0
	for cursor := ""; ; pages++ {
		path := "/audit/events?limit=1000"
		if cursor != "" {
			path += "&after=" + cursor
		}
		code, body, _ := get(t, srv, "GET", path)
		if code != 200 {
			t.Fatalf("feed: %d", code)
		}
		check("/audit/events", body)
		var feed audit.Feed
		_ = json.Unmarshal(body, &feed)
		if len(feed.Events) == 0 {
			break
		}
		cursor = feed.Next
	}
	fsrv := httptest.NewServer(l.AuditEventHandler())
	defer fsrv.Close()
	next := "/fhir/r4/AuditEvent?_count=1000"
	for next != "" {
		code, body, _ := get(t, fsrv, "GET", next)
		if code != 200 {
			t.Fatalf("AuditEvent search: %d", code)
		}
		check("AuditEvent search", body)
		var bd bundle
		_ = json.Unmarshal(body, &bd)
		next = ""
		for _, ln := range bd.Link {
			if ln.Relation == "next" {
				next = ln.URL[strings.Index(ln.URL, "/fhir/"):]
			}
		}
	}
	// A search by a real patient reference works and leaks nothing either.
	code, body, _ := get(t, fsrv, "GET", "/fhir/r4/AuditEvent?patient=Patient/"+firstPatient(t, raw[0]))
	if code != 200 || !strings.Contains(string(body), `"entry":[{`) {
		t.Fatalf("search by patient: %d", code)
	}
	check("AuditEvent search by patient", body)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	check("raw audit tables", h.Dump(t))
	t.Logf("%d events, %d name/city and %d identifier/phone/address values checked", len(evs)+1, len(nd.words), len(nd.values))
}

func firstPatient(t *testing.T, bundleJSON []byte) string {
	var b struct {
		Entry []struct {
			Resource struct{ ResourceType, ID string }
		} `json:"entry"`
	}
	_ = json.Unmarshal(bundleJSON, &b)
	for _, e := range b.Entry {
		if e.Resource.ResourceType == "Patient" {
			return e.Resource.ID
		}
	}
	t.Fatal("no patient in bundle")
	return ""
}
