package fhirserver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"phix/store/sqlite"
)

func FuzzParseEntryURL(f *testing.F) {
	for _, s := range []string{
		"Patient", "Patient/123", "Patient/123/_history/2", "Patient?identifier=a|b", "Patient/1?x=y",
		"/Observation/_search?code=1", "Patient/$validate", "http://h/fhir/r4/Patient/1", "urn:uuid:1",
		"_history", "metadata", "?_type=Patient", "Patient/a/b/c/d/e", "Pat ient/1", "", "?", "Patient/%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseEntryURL(raw, "http://h/fhir/r4")
		if err != nil {
			if asError(err).Status >= 500 {
				t.Fatalf("5xx for %q", raw)
			}
			return
		}
		if u.ID != "" && !validID(u.ID) {
			t.Fatalf("invalid id accepted from %q", raw)
		}
		if u.Type != "" && checkType(u.Type) != nil {
			t.Fatalf("unknown type accepted from %q", raw)
		}
	})
}

func FuzzConditionalRef(f *testing.F) {
	for _, s := range []string{"Patient?identifier=x|y", "Patient/1", "?a=b", "Patient?", "Nope?x=1", "urn:uuid:x", "Patient?a=b?c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		typ, q, ok := parseConditionalRef(ref)
		if !ok {
			return
		}
		if checkType(typ) != nil || q == "" || typ+"?"+q != ref {
			t.Fatalf("bad split of %q: %q %q", ref, typ, q)
		}
	})
}

func FuzzHeaders(f *testing.F) {
	for _, s := range []string{`W/"1"`, `"2"`, "3", `W/""`, "W/", "return=minimal; handling=strict", "return=OperationOutcome,handling=lenient", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if n, err := parseETag(v); err == nil && n < 1 {
			t.Fatalf("version %d from %q", n, v)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Prefer", v)
		p := parsePrefer(r)
		switch p.ret {
		case "", "minimal", "representation", "OperationOutcome":
		default:
			t.Fatalf("return=%q from %q", p.ret, v)
		}
		r.Header.Set("Accept", v)
		_ = negotiate(r)
	})
}

// FuzzRequest sends arbitrary bodies and query strings through the whole
// server: a client's mistake never gets a 5xx.
func FuzzRequest(f *testing.F) {
	st, err := sqlite.Open(":memory:")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	tok := strings.Repeat("t", 32)
	auth, _ := NewStaticTokens(tok)
	s, err := New(Config{Store: st, Auth: auth, MaxBodyBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	seeds := []struct {
		method, path, body string
	}{
		{"POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:a"}},"request":{"method":"POST","url":"Observation"}}]}`},
		{"POST", "", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?name=x"}},{"request":{"method":"DELETE","url":"Patient?_id=1"}}]}`},
		{"POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","managingOrganization":{"reference":"Organization?identifier=a|b"}},"request":{"method":"PUT","url":"Patient?identifier=x"}}]}`},
		{"POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"x"}]}`},
		{"PUT", "/Patient/a", `{"resourceType":"Patient","id":"a"}`},
		{"GET", "/Patient?name=x&_sort=-birthdate&_count=2&_include=Patient:organization", ""},
		{"GET", "/Observation?value-quantity=gt5.4|http://unitsofmeasure.org|mg&date=le2020", ""},
		{"GET", "/_history?_since=2020-01-01&_count=1", ""},
		{"PATCH", "/Patient/a", `[{"op":"add","path":"/active","value":true},{"op":"test","path":"/id","value":"a"}]`},
		{"PATCH", "/Patient?_id=a", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"gender"},{"name":"value","valueCode":"other"}]}]}`},
		{"POST", "", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W3sib3AiOiJyZW1vdmUiLCJwYXRoIjoiL2FjdGl2ZSJ9XQ=="},"request":{"method":"PATCH","url":"Patient/a"}}]}`},
	}
	for _, sd := range seeds {
		f.Add(sd.method, sd.path, sd.body)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		switch method {
		case "GET", "POST", "PUT", "DELETE", "PATCH":
		default:
			method = "GET"
		}
		if strings.ContainsAny(path, " \r\n\t#") || strings.HasPrefix(path, "//") {
			return
		}
		req, err := http.NewRequest(method, "http://x"+BasePath+path, bytes.NewBufferString(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/fhir+json")
		if method == "PATCH" && strings.HasPrefix(body, "[") {
			req.Header.Set("Content-Type", "application/json-patch+json")
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s -> %d: %s", method, path, rec.Code, rec.Body.Bytes())
		}
	})
}
