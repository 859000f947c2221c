package devnet

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"phix/auth/oidc"
)

// TestTokensFromOwnAuthorizationServer: the dev token files hold short-lived
// JWTs of each hospital's own authorization server, which publishes SMART
// discovery under the FHIR base, and roles keep clinicians and auditors apart.
func TestTokensFromOwnAuthorizationServer(t *testing.T) {
	n, err := Start(context.Background(), Options{DataDir: t.TempDir(), BasePort: -1, NoSeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, h := range n.Hospitals {
		resp, err := http.Get(h.FHIR + "/.well-known/smart-configuration")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if resp.StatusCode != 200 || doc["issuer"] != h.Auth || doc["token_endpoint"] != h.Auth+"/token" {
			t.Fatalf("%s smart-configuration: %d %v", h.ID, resp.StatusCode, doc)
		}
		for _, tok := range []string{h.Token, h.AuditorToken} {
			p, err := oidc.Parse(tok)
			if err != nil {
				t.Fatal(err)
			}
			if p.Claims.Issuer != h.Auth || !p.Claims.Audience.Contains(h.FHIR) || p.Claims.Expiry.Time().Sub(p.Claims.IssuedAt.Time()) > 300*time.Second {
				t.Fatalf("%s token claims %+v", h.ID, p.Claims)
			}
		}
		if st, _ := get(t, h.FHIR+"/Patient", h.Token); st != 200 {
			t.Fatalf("%s clinician-administrator: %d", h.ID, st)
		}
		if st, _ := get(t, h.FHIR+"/AuditEvent", h.AuditorToken); st != 200 {
			t.Fatalf("%s auditor on AuditEvent: %d", h.ID, st)
		}
		if st, _ := get(t, h.FHIR+"/Patient", h.AuditorToken); st != 403 {
			t.Fatalf("%s auditor on clinical data: %d", h.ID, st)
		}
		if st, _ := get(t, h.FHIR+"/AuditEvent", h.Token); st != 403 {
			t.Fatalf("%s clinician on the audit log: %d", h.ID, st)
		}
	}
}
