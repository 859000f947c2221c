package fhirserver

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"phix/store/reindex"
)

// TestJobRetentionPurgedStatus: once finished jobs are purged, polling
// their status ($reindex-status, $encrypt?job=, also on the server that ran
// them and still remembers them) answers 404 not-found, as does resuming a
// purged $encrypt job; the job that makes a custom parameter searchable is
// kept, so its status and the CapabilityStatement still report it.
func TestJobRetentionPurgedStatus(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	m, err := reindex.Open(ctx, st, reindex.Options{BatchSize: 50, Refresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if got := m.Retention(); got != reindex.DefaultRetention {
		t.Fatalf("default retention %s", got)
	}
	e := newEnv(t, st, func(c *Config) { c.Reindex = m; c.JobRetention = -1 })
	if got := m.Retention(); got >= 0 {
		t.Fatalf("Config.JobRetention -1 left the Manager's retention at %s", got)
	}
	for i := 0; i < 10; i++ {
		e.do("POST", "/Patient", colourPatient("Fam", []string{"red", "blue"}[i%2])).want(t, http.StatusCreated)
	}
	e.do("POST", "/SearchParameter", colourParam("Patient.extension.where(url='http://example.org/colour').value")).want(t, http.StatusCreated)
	jobs, err := m.Jobs(ctx)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs: %v, %v", jobs, err)
	}
	if j, err := m.Wait(ctx, jobs[0].ID); err != nil || j.Status != reindex.StatusCompleted {
		t.Fatalf("colour job: %+v, %v", j, err)
	}
	keptLoc := "/$reindex-status?_jobId=" + jobs[0].ID
	full := jobStatus(t, e, e.do("POST", "/Patient/$reindex", nil).want(t, http.StatusAccepted).header.Get("Content-Location"))
	if !strings.Contains(string(full.body), `"valueCode":"completed"`) {
		t.Fatalf("full reindex: %s", full.body)
	}
	fullLoc := "/$reindex-status?_jobId=" + param(full, "id")
	encLoc := e.do("POST", "/Patient/$encrypt", nil).want(t, http.StatusAccepted).header.Get("Content-Location")
	deadline := time.Now().Add(60 * time.Second)
	for param(e.do("GET", encLoc, nil).want(t, http.StatusOK), "status") == "running" {
		if time.Now().After(deadline) {
			t.Fatal("$encrypt job did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, encQuery, _ := strings.Cut(encLoc, "?")

	n, err := m.PurgeJobs(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("purge: %d, %v (want the full reindex and the $encrypt job)", n, err)
	}
	for _, loc := range []string{fullLoc, encLoc} {
		r := e.do("GET", loc, nil).want(t, http.StatusNotFound).wantCode(t, string(CodeNotFound))
		if !strings.Contains(string(r.body), "retention") {
			t.Fatalf("%s: %s", loc, r.body)
		}
	}
	e.do("POST", "/$encrypt?"+encQuery, nil).want(t, http.StatusNotFound).wantCode(t, string(CodeNotFound))
	// Kept: the parameter's job, and the parameter stays searchable.
	if r := e.do("GET", keptLoc, nil).want(t, http.StatusOK); !strings.Contains(string(r.body), `"valueCode":"completed"`) {
		t.Fatalf("kept job: %s", r.body)
	}
	if params, _ := capNames(t, e.do("GET", "/metadata", nil).want(t, http.StatusOK), "Patient"); !params["colour"] {
		t.Fatal("colour left the CapabilityStatement")
	}
	if n := e.do("GET", "/Patient?colour=red", nil, "Prefer", "handling=strict").want(t, http.StatusOK).total(); n != 5 {
		t.Fatalf("colour=red: %d", n)
	}
}
