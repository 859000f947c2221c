package fhirserver

import (
	"context"
	"strings"
	"testing"

	"phix/store"
)

// stored counts every version in the store (system history total).
func stored(t *testing.T, st store.Store) int {
	t.Helper()
	_, n, err := st.History(context.Background(), store.HistoryOptions{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBadInput(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			testBadInput(t, newEnv(t, open(t), func(c *Config) { c.MaxBodyBytes = 4096; c.MaxDepth = 16 }))
		})
	}
}

func testBadInput(t *testing.T, e *env) {
	deep := strings.Repeat(`{"extension":[`, 20) + strings.Repeat(`]}`, 20)
	bigName := strings.Repeat("x", 5000)
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    []string
		status int
		code   Code
	}{
		{"malformed JSON", "POST", "/Patient", `{"resourceType":"Patient",`, nil, 400, CodeInvalidJSON},
		{"not an object", "POST", "/Patient", `[1,2]`, nil, 400, CodeInvalidJSON},
		{"invalid UTF-8", "POST", "/Patient", "{\"resourceType\":\"Patient\",\"gender\":\"\xff\xfe\"}", nil, 400, CodeInvalidJSON},
		{"duplicate key", "POST", "/Patient", `{"resourceType":"Patient","gender":"male","gender":"female"}`, nil, 400, CodeInvalidJSON},
		{"wrong content type", "POST", "/Patient", `{"resourceType":"Patient"}`, []string{"Content-Type", "application/xml"}, 415, CodeUnsupportedMedia},
		{"form content type on create", "POST", "/Patient", `{"resourceType":"Patient"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, CodeUnsupportedMedia},
		{"body over the limit", "POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"` + bigName + `"}]}`, nil, 413, CodeTooLarge},
		{"nesting too deep", "POST", "/Patient", `{"resourceType":"Patient","extension":[` + deep + `]}`, nil, 400, CodeTooDeep},
		{"illegal id characters in update", "PUT", "/Patient/bad$id", `{"resourceType":"Patient","id":"bad$id"}`, nil, 400, CodeInvalidID},
		{"id too long", "GET", "/Patient/" + strings.Repeat("a", 65), "", nil, 400, CodeInvalidID},
		{"illegal id in body", "PUT", "/Patient?identifier=x|y", `{"resourceType":"Patient","id":"a b"}`, nil, 400, CodeInvalidID},
		{"unknown element", "POST", "/Patient", `{"resourceType":"Patient","shoeSize":42}`, nil, 400, CodeValidation},
		{"wrong JSON type", "POST", "/Patient", `{"resourceType":"Patient","active":"yes"}`, nil, 400, CodeValidation},
		{"bad date format", "POST", "/Patient", `{"resourceType":"Patient","birthDate":"01/02/1970"}`, nil, 400, CodeValidation},
		{"required binding", "POST", "/Patient", `{"resourceType":"Patient","gender":"robot"}`, nil, 400, CodeValidation},
		{"unknown resource type in body", "POST", "/Patient", `{"resourceType":"Pateint"}`, nil, 400, CodeValidation},
		{"unknown resource type in URL", "GET", "/Pateint?name=x", "", nil, 404, CodeUnknownType},
		{"unknown search parameter, strict", "GET", "/Patient?shoe=1", "", []string{"Prefer", "handling=strict"}, 400, CodeInvalidSearch},
		{"bad search value", "GET", "/Patient?birthdate=notadate", "", nil, 400, CodeInvalidSearch},
		{"bad _count", "GET", "/Patient?_count=-1", "", nil, 400, CodeInvalidSearch},
		{"_format=xml", "GET", "/Patient?_format=xml", "", nil, 406, CodeNotAcceptable},
		{"_format with fhirVersion", "GET", "/Patient?_format=" + urlq("application/fhir+json;fhirVersion=3.0"), "", nil, 406, CodeUnsupportedVersion},
		{"Accept another FHIR version", "GET", "/Patient", "", []string{"Accept", "application/fhir+json; fhirVersion=5.0"}, 406, CodeUnsupportedVersion},
		{"body of another FHIR version", "POST", "/Patient", `{"resourceType":"Patient"}`, []string{"Content-Type", "application/fhir+json; fhirVersion=3.0"}, 415, CodeUnsupportedVersion},
		{"Accept only XML", "GET", "/Patient", "", []string{"Accept", "application/fhir+xml"}, 406, CodeNotAcceptable},
		{"PATCH without id or condition", "PATCH", "/Patient", "", nil, 405, CodeMethodNotAllowed},
		{"PATCH of a missing resource", "PATCH", "/Patient/x", `[]`, []string{"Content-Type", "application/json-patch+json"}, 404, CodeNotFound},
		{"POST on an instance", "POST", "/Patient/x", `{}`, nil, 405, CodeMethodNotAllowed},
		{"no endpoint", "GET", "/nothing/here/at/all/x", "", nil, 404, CodeNotFound},
		{"missing token", "GET", "/Patient", "", []string{"Authorization", ""}, 401, CodeUnauthorized},
		{"wrong token", "GET", "/Patient", "", []string{"Authorization", "Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 401, CodeUnauthorized},
		{"basic auth", "GET", "/Patient", "", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, CodeUnauthorized},
		{"bundle of wrong type", "POST", "", `{"resourceType":"Bundle","type":"collection"}`, nil, 400, CodeInvalidBundle},
		{"bundle entry with an unknown element", "POST", "", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient"},"bogus":1}]}`, nil, 400, CodeValidation},
		{"bundle entry with a bad method", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"FETCH","url":"Patient"}}]}`, nil, 400, CodeValidation},
		{"not a bundle at base", "POST", "", `{"resourceType":"Patient"}`, nil, 400, CodeInvalidBundle},
		{"_since garbage", "GET", "/_history?_since=yesterday", "", nil, 400, CodeInvalidRequest},
		{"vread bad version", "GET", "/Patient/x/_history/abc", "", nil, 404, CodeNotFound},
		{"bad _summary", "GET", "/Patient?_summary=maybe", "", nil, 400, CodeInvalidSearch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := stored(t, e.store)
			var body any
			if c.body != "" {
				body = c.body
			}
			r := e.do(c.method, c.path, body, c.hdr...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %.400s", r.status, c.status, r.body)
			}
			if got := r.errCode(); got != string(c.code) {
				t.Fatalf("code %q, want %q: %.400s", got, c.code, r.body)
			}
			if c.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without WWW-Authenticate: %v", r.header)
			}
			if after := stored(t, e.store); after != before {
				t.Fatalf("a refused request stored %d versions", after-before)
			}
		})
	}
}

func TestValidationIssuesHaveLocations(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	r := e.do("POST", "/Patient", `{"resourceType":"Patient","active":"yes","birthDate":"x","shoeSize":1}`).want(t, 400)
	issues := r.obj["issue"].([]any)
	if len(issues) < 3 {
		t.Fatalf("want every issue, got %s", r.body)
	}
	for _, i := range issues {
		if i.(map[string]any)["expression"] == nil {
			t.Fatalf("issue without location: %v", i)
		}
	}
}

// TestSQLMetacharacters sends SQL syntax in every kind of value: it must be
// data, never code.
func TestSQLMetacharacters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		evil := `x'; DROP TABLE resources; --`
		p := patient(evil, `"); DELETE FROM resources; --`)
		c := e.do("POST", "/Patient", p).want(t, 201)
		for _, q := range []string{
			"/Patient?family=" + urlq(evil),
			"/Patient?family:exact=" + urlq(evil),
			"/Patient?identifier=" + urlq(`urn:test:mrn|`+evil),
			"/Patient?_id=" + urlq(`1' OR '1'='1`),
			"/Patient?_sort=" + urlq("family;DROP TABLE x"),
			"/Patient?name:contains=" + urlq("%_'\\"),
			"/Patient?general-practitioner=" + urlq("Practitioner/1' OR 1=1--"),
		} {
			r := e.do("GET", q, nil)
			if r.status >= 500 {
				t.Fatalf("%s: status %d", q, r.status)
			}
		}
		s := e.do("GET", "/Patient?family:exact="+urlq(evil), nil).want(t, 200)
		if s.total() != 1 {
			t.Fatalf("exact match on a value with SQL in it: total %d", s.total())
		}
		if e.protected {
			e.do("GET", "/Patient?name:contains="+urlq("%"), nil).want(t, 422).wantCode(t, "PHI-6006")
		} else if s := e.do("GET", "/Patient?name:contains="+urlq("%"), nil).want(t, 200); s.total() != 0 {
			t.Fatalf("%% is a wildcard: total %d", s.total())
		}
		e.do("GET", "/Patient/"+c.str("id"), nil).want(t, 200)
	})
}

func TestTransactionFailingHalfWayStoresNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.do("POST", "/Patient", patient("Keep", "Me")).want(t, 201)
		before := stored(t, e.store)
		two := patient("Tx", "Two")
		two["id"] = "tx-two"
		bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"fullUrl": "urn:uuid:1", "resource": patient("Tx", "One"), "request": map[string]any{"method": "POST", "url": "Patient"}},
			map[string]any{"resource": two, "request": map[string]any{"method": "PUT", "url": "Patient/tx-two"}},
			// fails at execution: If-Match on a resource that does not exist
			map[string]any{"resource": map[string]any{"resourceType": "Patient", "id": "tx-three"}, "request": map[string]any{"method": "PUT", "url": "Patient/tx-three", "ifMatch": `W/"7"`}},
			map[string]any{"resource": patient("Tx", "Four"), "request": map[string]any{"method": "POST", "url": "Patient"}},
		}}
		r := e.do("POST", "", bundle).want(t, 412)
		if r.errCode() != string(CodeVersionConflict) {
			t.Fatalf("code %q: %s", r.errCode(), r.body)
		}
		if !strings.Contains(string(r.body), "Bundle.entry[2]") {
			t.Fatalf("the failing entry is not named: %s", r.body)
		}
		if after := stored(t, e.store); after != before {
			t.Fatalf("a failed transaction stored %d versions", after-before)
		}
		e.do("GET", "/Patient/tx-two", nil).want(t, 404)
	})
}

func urlq(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", " ", "%20", "#", "%23", "'", "%27", "\"", "%22", ";", "%3B", "|", "%7C", "\\", "%5C", "=", "%3D")
	return r.Replace(s)
}
