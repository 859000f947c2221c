package devnet

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"phix/auth/authserver"
	"phix/auth/oidc"
	"phix/auth/secretbox"
	"phix/suite"
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

// TestExternalIdP: a token of an external OpenID provider (here another
// phix authorization server, a real provider with discovery and JWKS on
// 127.0.0.1:0) is accepted next to the hospital's own, through the same
// verification path; its roles still count.
func TestExternalIdP(t *testing.T) {
	ctx := context.Background()
	db, err := openAuthDB(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := make([]byte, 32)
	rand.Read(key)
	box, _ := secretbox.NewKey(suite.Intl, key)
	hs := httptest.NewUnstartedServer(nil)
	ext, err := authserver.New(ctx, authserver.Config{Issuer: "http://" + hs.Listener.Addr().String(), Audience: "urn:phix:regional-idp", DB: db, Sealer: box})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = ext.Handler()
	hs.Start()
	defer hs.Close()
	n, err := Start(ctx, Options{DataDir: t.TempDir(), BasePort: -1, NoSeed: true,
		IdPs: []oidc.Provider{{Issuer: ext.Issuer(), Audience: []string{"urn:phix:regional-idp"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	clin, _, _ := ext.Issue(authserver.Principal{Subject: "regional-dr", ClientID: "portal", Scope: "user/*.rs", Roles: []string{"clinician"}, Org: "hospital-a"})
	aud, _, _ := ext.Issue(authserver.Principal{Subject: "regional-aud", ClientID: "portal", Scope: "user/AuditEvent.rs", Roles: []string{"auditor"}})
	h := n.Hospitals[0]
	if st, _ := get(t, h.FHIR+"/Patient", clin); st != 200 {
		t.Fatalf("external clinician token: %d", st)
	}
	if st, _ := get(t, h.FHIR+"/Patient", aud); st != 403 {
		t.Fatalf("external auditor token on clinical data: %d", st)
	}
	if st, _ := get(t, h.FHIR+"/Patient", h.Token); st != 200 {
		t.Fatalf("own token next to the external IdP: %d", st)
	}
}
