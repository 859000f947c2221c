package fhirserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"phix/store/reindex"
)

func colourPatient(family, colour string) map[string]any {
	p := patient(family, "Ann")
	p["extension"] = []any{map[string]any{"url": "http://example.org/colour", "valueCode": colour}}
	return p
}

func colourParam(expr string) map[string]any {
	return map[string]any{
		"resourceType": "SearchParameter", "url": "http://example.org/SearchParameter/colour",
		"name": "colour", "status": "active", "code": "colour", "base": []any{"Patient"},
		"type": "token", "expression": expr, "description": "favourite colour",
	}
}

// jobStatus polls a $reindex-status URL until the job leaves running.
func jobStatus(t *testing.T, e *env, loc string) *resp {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.do("GET", loc, nil).want(t, http.StatusOK)
		if !strings.Contains(string(r.body), `"valueCode":"running"`) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still running: %s", r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCustomSearchParameter(t *testing.T) {
	st := openSQLite(t)
	m, err := reindex.Open(context.Background(), st, reindex.Options{BatchSize: 5, Pause: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	e := newEnv(t, st, func(c *Config) { c.Reindex = m })
	for i := 0; i < 40; i++ {
		e.do("POST", "/Patient", colourPatient(fmt.Sprintf("Fam%02d", i), []string{"red", "blue"}[i%2])).want(t, http.StatusCreated)
	}
	strict := []string{"Prefer", "handling=strict"}

	// A bad definition: 400 with the element and the position.
	r := e.do("POST", "/SearchParameter", colourParam("Patient.extension.where(url = ")).want(t, http.StatusBadRequest)
	if r.errCode() != string(CodeValidation) || !strings.Contains(string(r.body), "SearchParameter.expression") || !strings.Contains(string(r.body), "column") {
		t.Fatalf("bad expression: %s", r.body)
	}
	bad := colourParam("Patient.extension.value")
	bad["type"] = "special"
	e.do("POST", "/SearchParameter", bad).want(t, http.StatusBadRequest)
	bad = colourParam("Patient.name.family")
	bad["code"] = "family"
	e.do("POST", "/SearchParameter", bad).want(t, http.StatusBadRequest)

	e.do("POST", "/SearchParameter", colourParam("Patient.extension.where(url='http://example.org/colour').value")).want(t, http.StatusCreated)
	// 8 batches with 20 ms pauses: still indexing.
	r = e.do("GET", "/Patient?colour=red", nil, strict...).want(t, http.StatusBadRequest)
	if !strings.Contains(string(r.body), "being indexed") {
		t.Fatalf("search during the reindex: %s", r.body)
	}
	// An explicit type-level $reindex of the parameter.
	r = e.do("POST", "/Patient/$reindex?url="+"http://example.org/SearchParameter/colour", nil).want(t, http.StatusAccepted)
	loc := r.header.Get("Content-Location")
	if !strings.Contains(loc, "/$reindex-status?_jobId=") || !strings.Contains(r.header.Get("X-Progress"), "% done") {
		t.Fatalf("202 headers: %v", r.header)
	}
	r = jobStatus(t, e, loc)
	if !strings.Contains(string(r.body), `"valueCode":"completed"`) || !strings.Contains(string(r.body), `"valueDecimal":100.0`) || r.header.Get("X-Progress") != "100.0% done" {
		t.Fatalf("job: %s", r.body)
	}
	// The automatic job may still run: wait for every job.
	jobs, err := m.Jobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if _, err := m.Wait(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.do("GET", "/Patient?colour=red", nil, strict...).want(t, http.StatusOK).total(); n != 20 {
		t.Fatalf("colour=red: %d, want 20", n)
	}
	// The CapabilityStatement lists the ready custom parameter and $reindex.
	params, ops := capNames(t, e.do("GET", "/metadata", nil).want(t, http.StatusOK), "Patient")
	if !params["colour"] || !ops["reindex"] {
		t.Fatalf("metadata: colour %v, reindex %v", params["colour"], ops["reindex"])
	}
	// New writes are indexed at once.
	e.do("POST", "/Patient", colourPatient("Late", "red")).want(t, http.StatusCreated)
	if n := e.do("GET", "/Patient?colour=red", nil, strict...).want(t, http.StatusOK).total(); n != 21 {
		t.Fatalf("colour=red after a write: %d, want 21", n)
	}
	// A system-level full reindex with a Parameters body.
	body := map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "type", "valueCode": "Patient"}}}
	r = e.do("POST", "/$reindex", body).want(t, http.StatusAccepted)
	if r = jobStatus(t, e, r.header.Get("Content-Location")); !strings.Contains(string(r.body), `"valueCode":"completed"`) {
		t.Fatalf("full reindex: %s", r.body)
	}
	if n := e.do("GET", "/Patient?family=fam0", nil, strict...).want(t, http.StatusOK).total(); n != 10 {
		t.Fatalf("family=fam0 after a full reindex: %d", n)
	}

	// Bad $reindex requests.
	e.do("POST", "/$reindex?url=http://example.org/nope", nil).want(t, http.StatusBadRequest)
	e.do("POST", "/$reindex?type=NoSuchType", nil).want(t, http.StatusBadRequest)
	e.do("POST", "/$reindex", map[string]any{"resourceType": "Patient"}).want(t, http.StatusBadRequest)
	e.do("POST", "/$reindex", map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "bogus", "valueString": "x"}}}).want(t, http.StatusBadRequest)
	e.do("GET", "/$reindex-status?_jobId=nope", nil).want(t, http.StatusNotFound)
	e.do("GET", "/$reindex", nil).want(t, http.StatusMethodNotAllowed)

	// Deleting the SearchParameter removes the parameter.
	var spID string
	for _, en := range e.do("GET", "/SearchParameter", nil).want(t, http.StatusOK).entries() {
		res, _ := en["resource"].(map[string]any)
		spID, _ = res["id"].(string)
	}
	e.do("DELETE", "/SearchParameter/"+spID, nil).want(t, http.StatusNoContent)
	e.do("GET", "/Patient?colour=red", nil, strict...).want(t, http.StatusBadRequest)
	if params, _ := capNames(t, e.do("GET", "/metadata", nil).want(t, http.StatusOK), "Patient"); params["colour"] {
		t.Fatal("metadata still lists the deleted parameter")
	}
}

func TestReindexDisabled(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	e.do("POST", "/$reindex", nil).want(t, http.StatusNotImplemented)
	e.do("GET", "/$reindex-status?_jobId=x", nil).want(t, http.StatusNotImplemented)
	// Without a Manager a SearchParameter is an ordinary resource.
	e.do("POST", "/SearchParameter", colourParam("Patient.extension.value")).want(t, http.StatusCreated)
}

// FuzzReindexParameters feeds arbitrary JSON objects to the $reindex body
// reader: it must not panic, and what it accepts has only non-empty values.
func FuzzReindexParameters(f *testing.F) {
	f.Add(`{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"http://x/sp"},{"name":"type","valueCode":"Patient"}]}`)
	f.Add(`{"resourceType":"Parameters","parameter":[{"name":"url"}]}`)
	f.Add(`{"resourceType":"Parameters","parameter":[1,null,{"name":5}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		var obj map[string]any
		if json.Unmarshal([]byte(s), &obj) != nil {
			return
		}
		urls, types, err := reindexParameters(obj)
		if err != nil {
			return
		}
		for _, v := range append(urls, types...) {
			if v == "" {
				t.Fatal("accepted an empty value")
			}
		}
	})
}
