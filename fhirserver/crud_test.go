package fhirserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"phix/store"
)

// storeFactory opens a fresh, empty store for one test.
type storeFactory func(testing.TB) store.Store

// backends are the stores every core test runs against. PostgreSQL is added
// by postgres_test.go.
var backends = map[string]storeFactory{"sqlite": func(t testing.TB) store.Store { return openSQLite(t) }}

// forEachBackend runs fn as a subtest per store backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) { fn(t, newEnv(t, open(t))) })
	}
}

func TestCRUD(t *testing.T) {
	forEachBackend(t, testCRUD)
}

func testCRUD(t *testing.T, e *env) {
	// create: server id, version 1, headers.
	c := e.do("POST", "/Patient", patient("Smith", "Ann")).want(t, http.StatusCreated)
	id := c.str("id")
	if !validID(id) || c.str("meta", "versionId") != "1" || c.str("meta", "lastUpdated") == "" {
		t.Fatalf("create stamped id %q meta %v", id, c.obj["meta"])
	}
	if got := c.header.Get("ETag"); got != `W/"1"` {
		t.Fatalf("ETag %q", got)
	}
	if loc := c.header.Get("Location"); !strings.HasSuffix(loc, "/Patient/"+id+"/_history/1") {
		t.Fatalf("Location %q", loc)
	}
	if c.header.Get("Last-Modified") == "" || !strings.HasPrefix(c.header.Get("Content-Type"), "application/fhir+json") {
		t.Fatalf("headers %v", c.header)
	}
	// a client id on create is replaced.
	p := patient("Lee", "Bo")
	p["id"] = "client-chosen"
	if got := e.do("POST", "/Patient", p).want(t, 201).str("id"); got == "client-chosen" {
		t.Fatal("create kept the client's id")
	}
	// read.
	r := e.do("GET", "/Patient/"+id, nil).want(t, 200)
	if r.str("name") != "" || r.str("id") != id || r.header.Get("ETag") != `W/"1"` {
		t.Fatalf("read: %s", r.body)
	}
	// update keeps client meta.tag/security/profile.
	up := patient("Smith", "Anne")
	up["id"] = id
	up["meta"] = map[string]any{
		"tag":       []any{map[string]any{"system": "urn:t", "code": "x"}},
		"security":  []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}},
		"profile":   []any{"http://hl7.org/fhir/StructureDefinition/Patient"},
		"versionId": "99",
	}
	u := e.do("PUT", "/Patient/"+id, up).want(t, 200)
	meta := u.obj["meta"].(map[string]any)
	if meta["versionId"] != "2" || meta["tag"] == nil || meta["security"] == nil || meta["profile"] == nil {
		t.Fatalf("update meta %v", meta)
	}
	// vread of both versions.
	v1 := e.do("GET", "/Patient/"+id+"/_history/1", nil).want(t, 200)
	if v1.str("meta", "versionId") != "1" {
		t.Fatalf("vread 1: %s", v1.body)
	}
	e.do("GET", "/Patient/"+id+"/_history/2", nil).want(t, 200)
	e.do("GET", "/Patient/"+id+"/_history/3", nil).want(t, 404)
	// If-Match: stale fails with 412, current succeeds.
	if got := e.do("PUT", "/Patient/"+id, up, "If-Match", `W/"1"`).want(t, 412).errCode(); got != string(CodeVersionConflict) {
		t.Fatalf("stale If-Match code %q", got)
	}
	e.do("PUT", "/Patient/"+id, up, "If-Match", `W/"2"`).want(t, 200)
	e.do("PUT", "/Patient/"+id, up, "If-Match", `garbage`).want(t, 400)
	// update-as-create with a client id.
	nc := patient("New", "Client")
	nc["id"] = "client-1"
	uc := e.do("PUT", "/Patient/client-1", nc).want(t, 201)
	if uc.str("id") != "client-1" || uc.header.Get("ETag") != `W/"1"` {
		t.Fatalf("update-as-create: %s", uc.body)
	}
	// body id must match the URL; body without id is refused on update.
	nc["id"] = "other"
	if got := e.do("PUT", "/Patient/client-1", nc).want(t, 400).errCode(); got != string(CodeValidation) {
		t.Fatalf("id mismatch code %q", got)
	}
	delete(nc, "id")
	e.do("PUT", "/Patient/client-1", nc).want(t, 400)
	// resourceType must match the URL.
	obs := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}}
	e.do("POST", "/Patient", obs).want(t, 400)
	// delete: versioned and soft; read answers 410, history keeps it.
	d := e.do("DELETE", "/Patient/"+id, nil).want(t, 204)
	if d.header.Get("ETag") != `W/"4"` {
		t.Fatalf("delete ETag %q", d.header.Get("ETag"))
	}
	if got := e.do("GET", "/Patient/"+id, nil).want(t, 410).errCode(); got != string(CodeGone) {
		t.Fatalf("read deleted code %q", got)
	}
	e.do("GET", "/Patient/"+id+"/_history/4", nil).want(t, 410)
	e.do("GET", "/Patient/"+id+"/_history/3", nil).want(t, 200)
	e.do("DELETE", "/Patient/"+id, nil).want(t, 204) // idempotent
	e.do("DELETE", "/Patient/never-was", nil).want(t, 204)
	h := e.do("GET", "/Patient/"+id+"/_history", nil).want(t, 200)
	if h.total() != 4 || len(h.entries()) != 4 {
		t.Fatalf("instance history: %s", h.body)
	}
	first := h.entries()[0]
	if req := first["request"].(map[string]any); req["method"] != "DELETE" || first["resource"] != nil {
		t.Fatalf("newest history entry: %v", first)
	}
	// a re-create after delete continues the version sequence.
	up["meta"] = nil
	delete(up, "meta")
	e.do("PUT", "/Patient/"+id, up).want(t, 201)
	if v := e.do("GET", "/Patient/"+id, nil).want(t, 200).str("meta", "versionId"); v != "5" {
		t.Fatalf("re-create version %s", v)
	}
	e.do("GET", "/Patient/nope", nil).want(t, 404)
	e.do("GET", "/Patient/nope/_history", nil).want(t, 404)
	// R4 media type parameters are accepted.
	e.do("GET", "/Patient/"+id+"?_format="+urlq("application/fhir+json;fhirVersion=4.0"), nil, "Accept", "application/fhir+json; fhirVersion=4.0").want(t, 200)
	// Conditional read: If-None-Match (a list, weak or strong, "*"), else If-Modified-Since.
	for _, c := range []struct {
		header, value string
		want          int
	}{
		{"If-None-Match", `W/"5"`, 304}, {"If-None-Match", `"5"`, 304}, {"If-None-Match", `W/"3", W/"5"`, 304},
		{"If-None-Match", `*`, 304}, {"If-None-Match", `W/"4"`, 200},
		{"If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), 304},
		{"If-Modified-Since", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 200},
		{"If-Modified-Since", "not a date", 200},
	} {
		r := e.do("GET", "/Patient/"+id, nil, c.header, c.value).want(t, c.want)
		if c.want == 304 && len(r.body) != 0 {
			t.Fatalf("%s %s: 304 with a body", c.header, c.value)
		}
	}
	// If-None-Match decides when both are present.
	e.do("GET", "/Patient/"+id, nil, "If-None-Match", `W/"4"`, "If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)).want(t, 200)
}

func TestPrefer(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	min := e.do("POST", "/Patient", patient("A", "B"), "Prefer", "return=minimal").want(t, 201)
	if len(min.body) != 0 || min.header.Get("Location") == "" || min.header.Get("ETag") == "" {
		t.Fatalf("minimal: %q %v", min.body, min.header)
	}
	oo := e.do("POST", "/Patient", patient("A", "B"), "Prefer", "return=OperationOutcome").want(t, 201)
	if oo.str("resourceType") != "OperationOutcome" {
		t.Fatalf("OperationOutcome: %s", oo.body)
	}
	rep := e.do("POST", "/Patient", patient("A", "B"), "Prefer", "return=representation").want(t, 201)
	if rep.str("resourceType") != "Patient" {
		t.Fatalf("representation: %s", rep.body)
	}
	id := rep.str("id")
	p := patient("A", "C")
	p["id"] = id
	if u := e.do("PUT", "/Patient/"+id, p, "Prefer", "return=minimal").want(t, 200); len(u.body) != 0 {
		t.Fatalf("update minimal body %q", u.body)
	}
	if d := e.do("DELETE", "/Patient/"+id, nil, "Prefer", "return=OperationOutcome").want(t, 200); d.str("resourceType") != "OperationOutcome" {
		t.Fatalf("delete OperationOutcome: %s", d.body)
	}
}

func TestConditional(t *testing.T) {
	forEachBackend(t, testConditional)
}

func testConditional(t *testing.T, e *env) {
	// conditional create: 0 matches creates, 1 match returns it, >1 is 412.
	c1 := e.do("POST", "/Patient", patient("Cond", "One"), "If-None-Exist", "identifier=urn:test:mrn|Cond-One").want(t, 201)
	c2 := e.do("POST", "/Patient", patient("Cond", "One"), "If-None-Exist", "identifier=urn:test:mrn|Cond-One").want(t, 200)
	if c1.str("id") != c2.str("id") {
		t.Fatal("conditional create made a duplicate")
	}
	// the "Type?query" form some clients send.
	c3 := e.do("POST", "/Patient", patient("Cond", "One"), "If-None-Exist", "Patient?identifier=urn:test:mrn|Cond-One").want(t, 200)
	if c3.str("id") != c1.str("id") {
		t.Fatal("If-None-Exist with a type prefix did not match")
	}
	e.do("POST", "/Patient", patient("Cond", "One"), "If-None-Exist", "Observation?identifier=x").want(t, 400)
	e.do("POST", "/Patient", patient("Cond", "Two")).want(t, 201)
	e.do("POST", "/Patient", patient("Cond", "Three"), "If-None-Exist", "family=Cond").want(t, 412)
	// an unknown parameter in a condition is refused, never ignored.
	e.do("POST", "/Patient", patient("Cond", "Four"), "If-None-Exist", "nosuchparam=1").want(t, 400)

	// conditional update: 1 match updates it; 0 creates; >1 is 412.
	p := patient("Cond", "One")
	p["gender"] = "male"
	u := e.do("PUT", "/Patient?identifier=urn:test:mrn|Cond-One", p).want(t, 200)
	if u.str("id") != c1.str("id") || u.str("meta", "versionId") != "2" {
		t.Fatalf("conditional update: %s", u.body)
	}
	nw := e.do("PUT", "/Patient?identifier=urn:test:mrn|Cond-Five", patient("Cond", "Five")).want(t, 201)
	if nw.str("id") == "" {
		t.Fatal("conditional update-as-create gave no id")
	}
	e.do("PUT", "/Patient?family=Cond", patient("Cond", "Six")).want(t, 412)
	e.do("PUT", "/Patient", patient("Cond", "Six")).want(t, 405)

	// conditional delete: single, multiple within the limit, 412 above it.
	e.do("DELETE", "/Patient?identifier=urn:test:mrn|Cond-Two", nil).want(t, 204)
	s := e.do("GET", "/Patient?family=Cond", nil).want(t, 200)
	if s.total() != 2 {
		t.Fatalf("after conditional delete: total %d", s.total())
	}
	e.do("DELETE", "/Patient?family=Cond", nil).want(t, 204)
	if s := e.do("GET", "/Patient?family=Cond", nil).want(t, 200); s.total() != 0 {
		t.Fatalf("after multiple delete: total %d", s.total())
	}
	e.do("DELETE", "/Patient?family=Nobody", nil).want(t, 204)
}

func TestConditionalDeleteLimit(t *testing.T) {
	e := newEnv(t, openSQLite(t), func(c *Config) { c.MaxConditionalDelete = 2 })
	for i := 0; i < 3; i++ {
		e.do("POST", "/Patient", patient("Many", "X")).want(t, 201)
	}
	if got := e.do("DELETE", "/Patient?family=Many", nil).want(t, 412).errCode(); got != string(CodeMultipleMatches) {
		t.Fatalf("code %q", got)
	}
	if s := e.do("GET", "/Patient?family=Many", nil).want(t, 200); s.total() != 3 {
		t.Fatalf("a refused conditional delete removed something: total %d", s.total())
	}
}
