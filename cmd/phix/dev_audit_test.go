package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"phix/devnet"
)

// TestDevAuditVerify runs traffic against the dev network (clinician
// writes and reads, auditor reads, refused cross-role requests), stops it,
// and checks that `phix audit verify --db` passes on each hospital's audit
// database, both with the keys stored there and restarted once more.
func TestDevAuditVerify(t *testing.T) {
	dir := t.TempDir()
	for round := 0; round < 2; round++ {
		n, err := devnet.Start(context.Background(), devnet.Options{DataDir: dir, BasePort: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range n.Hospitals {
			do := func(method, url, tok, body string, want int) {
				t.Helper()
				req, _ := http.NewRequest(method, url, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				if body != "" {
					req.Header.Set("Content-Type", "application/fhir+json")
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != want {
					t.Fatalf("%s %s: %d, want %d", method, url, res.StatusCode, want)
				}
			}
			root := strings.TrimSuffix(h.FHIR, "/fhir/r4")
			do("POST", h.FHIR+"/Patient", h.Token, `{"resourceType":"Patient","active":true}`, 201)
			do("GET", h.FHIR+"/Patient?active=true", h.Token, "", 200)
			do("GET", root+"/audit/events", h.AuditorToken, "", 200)
			do("GET", h.FHIR+"/AuditEvent", h.AuditorToken, "", 200)
			do("GET", root+"/audit/events", h.Token, "", 403)
			do("GET", h.FHIR+"/Patient", h.AuditorToken, "", 403)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		for _, h := range n.Hospitals {
			code, out, errs := auditRun(t, "verify", "--db", h.AuditDB)
			if code != 0 {
				t.Fatalf("round %d %s: audit verify exit %d: %s %s", round, h.ID, code, out, errs)
			}
		}
	}
}
