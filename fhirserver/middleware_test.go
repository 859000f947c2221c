package fhirserver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"phix/store"
)

// panicStore panics on Read with a message that must go nowhere.
type panicStore struct{ store.Store }

func (panicStore) Read(context.Context, string, string) (*store.Record, error) {
	panic("secret-patient-name-Zyxw")
}

func TestPanicBecomesDetailFree500(t *testing.T) {
	e := newEnv(t, panicStore{openSQLite(t)})
	r := e.do("GET", "/Patient/abc", nil).want(t, 500)
	if r.errCode() != string(CodeInternal) {
		t.Fatalf("code %q", r.errCode())
	}
	if strings.Contains(string(r.body), "Zyxw") || strings.Contains(e.logs.String(), "Zyxw") {
		t.Fatal("the panic value leaked")
	}
	// the server keeps serving.
	e.do("GET", "/metadata", nil).want(t, 200)
}

func TestRequestLogLine(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	e.do("GET", "/Patient?family=Secretname&birthdate=1970", nil).want(t, 200)
	e.do("POST", "/Patient", patient("Secretname", "Hidden")).want(t, 201)
	e.do("GET", "/Patient", nil, "Authorization", "").want(t, 401)
	lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines for 3 requests:\n%s", len(lines), e.logs.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		for _, k := range []string{"method", "route", "status", "duration_ms", "request_id"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("log line without %s: %s", k, l)
			}
		}
		if m["route"] != "/fhir/r4/{type}" {
			t.Fatalf("route %v", m["route"])
		}
	}
	if !strings.Contains(lines[2], `"error_code":"unauthorized"`) || !strings.Contains(lines[0], `"subject":"static-token-1"`) {
		t.Fatalf("error code or subject missing:\n%s", e.logs.String())
	}
	if strings.Contains(e.logs.String(), "Secretname") || strings.Contains(e.logs.String(), "Hidden") || strings.Contains(e.logs.String(), "1970") {
		t.Fatal("query or body reached the log")
	}
	if strings.Contains(e.logs.String(), e.token) {
		t.Fatal("the token reached the log")
	}
}

func TestStaticTokens(t *testing.T) {
	if _, err := NewStaticTokens(); err == nil {
		t.Fatal("no tokens accepted")
	}
	if _, err := NewStaticTokens("short"); err == nil {
		t.Fatal("short token accepted")
	}
	a, _ := NewToken()
	b, _ := NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("tokens %q %q", a, b)
	}
	st, err := NewStaticTokens(a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		header string
		ok     bool
	}{
		{"Bearer " + a, true}, {"bearer " + b, true}, {"Bearer " + a + "x", false}, {"Bearer", false},
		{"", false}, {"Basic " + a, false}, {"Bearer  " + a, true},
	} {
		r := newReq(c.header)
		p, err := st.Authenticate(r)
		if (err == nil) != c.ok || (c.ok && p == nil) {
			t.Fatalf("%q: %v %v", c.header, p, err)
		}
	}
}

// failStore fails every read the way a broken database does.
type failStore struct{ store.Store }

func (failStore) Read(context.Context, string, string) (*store.Record, error) {
	return nil, errors.New("store: read: database error SQLSTATE 57P01")
}

func TestStoreFailureIsLoggedWithoutDetailsToTheClient(t *testing.T) {
	e := newEnv(t, failStore{openSQLite(t)})
	r := e.do("GET", "/Patient/abc", nil).want(t, 500)
	if strings.Contains(string(r.body), "SQLSTATE") || r.errCode() != string(CodeInternal) {
		t.Fatalf("client saw: %s", r.body)
	}
	if !strings.Contains(e.logs.String(), `"cause":"store: read: database error SQLSTATE 57P01"`) {
		t.Fatalf("cause not logged: %s", e.logs.String())
	}
}
