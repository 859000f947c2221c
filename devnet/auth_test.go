package devnet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"phix/access/breakglass"
	"phix/access/policy"
	"phix/access/roles"
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

// TestDevLoginAuthorizationCode runs the SMART App Launch flow against a
// dev hospital: the dev app, PKCE S256, the login form with the dev
// clinician's credentials, the code exchange, and a FHIR read with the
// resulting token.
func TestDevLoginAuthorizationCode(t *testing.T) {
	dir := t.TempDir()
	n, err := Start(context.Background(), Options{DataDir: dir, BasePort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h := n.Hospitals[0]
	b, err := os.ReadFile(filepath.Join(dir, "dev", h.ID+".login"))
	if err != nil {
		t.Fatal(err)
	}
	creds := strings.Fields(string(b))
	verifier := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {DevAppClientID}, "redirect_uri": {DevAppRedirectURI},
		"scope": {"openid user/Patient.rs"}, "state": {"xyz"}, "aud": {h.FHIR},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(h.Auth + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="request" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("login form: %d", resp.StatusCode)
	}
	resp, err = noFollow.PostForm(h.Auth+"/authorize", url.Values{"request": {string(m[1])}, "username": {creds[0]}, "password": {creds[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "xyz" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	resp, err = http.PostForm(h.Auth+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {DevAppRedirectURI}, "client_id": {DevAppClientID}, "code_verifier": {verifier}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if st, obj := get(t, h.FHIR+"/Patient?_summary=count", tok.AccessToken); st != 200 || obj["total"].(float64) < 2 { // the demo patients, and the Synthea ones on hospital-a
		t.Fatalf("FHIR with the user's token: %d %v", st, obj)
	}
}

// TestPolicyDirectory: each hospital's policy files are on disk for the
// operator, and an edit is picked up while the network runs.
func TestPolicyDirectory(t *testing.T) {
	dir := t.TempDir()
	n, err := Start(context.Background(), Options{DataDir: dir, BasePort: -1, NoSeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h := n.Hospitals[0]
	if len(h.Policy.PolicyIDs()) == 0 {
		t.Fatal("no policy loaded")
	}
	extra := filepath.Join(dir, h.ID, "policy", "local.cedar")
	if err := os.WriteFile(extra, []byte(`@id("local-extra") forbid (principal, action, resource) when { context.purpose == "HPAYMT" };`), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !slices.Contains(h.Policy.PolicyIDs(), "local-extra") {
		if time.Now().After(deadline) {
			t.Fatal("policy edit not picked up")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBreakGlassAlertInAuditLog: a grant opened on a dev hospital is a
// security alert in its audit log (AuditEvent DCM 110113 / 110127) that the
// auditor reads, without the justification; the grant waits in the review
// queue.
func TestBreakGlassAlertInAuditLog(t *testing.T) {
	ctx := context.Background()
	n, err := Start(ctx, Options{DataDir: t.TempDir(), BasePort: -1, NoSeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h := n.Hospitals[0]
	user := h.ID + "-clinician"
	enr, err := h.TOTP.Begin(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	code := func(at time.Time) string {
		c, _ := ptotp.GenerateCodeCustom(enr.Secret, at, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		return c
	}
	if err := h.TOTP.Confirm(ctx, user, code(at.Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}
	const why = "unconscious patient brought in by ambulance"
	g, err := h.BreakGlass.Open(ctx, breakglass.Request{Principal: policy.Principal{ID: user, Roles: []roles.Role{roles.Clinician}, Org: h.ID},
		Patient: "Patient/p-unknown", Purpose: "ETREAT", Justification: why, TOTPCode: code(at)})
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := h.BreakGlass.Pending(ctx); len(q) != 1 || q[0].ID != g.ID {
		t.Fatal("grant not in the review queue")
	}
	req, _ := http.NewRequest("GET", h.FHIR+"/AuditEvent?_count=100", nil)
	req.Header.Set("Authorization", "Bearer "+h.AuditorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"110127"`) || !strings.Contains(string(body), `"110113"`) {
		t.Fatalf("break-glass alert not in the audit log: %d", resp.StatusCode)
	}
	if strings.Contains(string(body), "ambulance") || strings.Contains(string(body), "p-unknown") {
		t.Fatal("justification or patient id in the audit log")
	}
}

func httpCall(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestBreakGlassAPI: the clinician-administrator opens a grant over HTTP
// (justification and TOTP code required), the auditor sees it in the
// review queue and closes it; the clinician may not review.
func TestBreakGlassAPI(t *testing.T) {
	ctx := context.Background()
	n, err := Start(ctx, Options{DataDir: t.TempDir(), BasePort: -1, NoSeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h := n.Hospitals[0]
	root := strings.TrimSuffix(h.FHIR, "/fhir/r4") + "/break-glass"
	subject := h.ID + "-admin"
	enr, err := h.TOTP.Begin(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	code := func(at time.Time) string {
		c, _ := ptotp.GenerateCodeCustom(enr.Secret, at, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		return c
	}
	if err := h.TOTP.Confirm(ctx, subject, code(time.Now().Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}
	open := func(totp, justification string) (int, []byte) {
		return httpCall(t, "POST", root+"/", h.Token, `{"patient":"Patient/p1","purpose":"BTG","justification":"`+justification+`","totp":"`+totp+`"}`)
	}
	if st, b := open(code(time.Now()), "too short"); st != 400 || !strings.Contains(string(b), "break-glass-justification") {
		t.Fatalf("short justification: %d %s", st, b)
	}
	if st, _ := open("000000", "patient arrived unconscious, no records"); st != 401 && code(time.Now()) != "000000" {
		t.Fatalf("wrong TOTP: %d", st)
	}
	st, b := open(code(time.Now()), "patient arrived unconscious, no records")
	if st != 201 {
		t.Fatalf("open: %d %s", st, b)
	}
	var g struct{ ID, End string }
	json.Unmarshal(b, &g)
	if st, _ := httpCall(t, "GET", root+"/reviews", h.Token, ""); st != 403 {
		t.Fatalf("clinician read the review queue: %d", st)
	}
	st, b = httpCall(t, "GET", root+"/reviews", h.AuditorToken, "")
	if st != 200 || !strings.Contains(string(b), g.ID) || !strings.Contains(string(b), "unconscious") {
		t.Fatalf("review queue: %d %s", st, b)
	}
	if st, _ := httpCall(t, "POST", root+"/reviews/"+g.ID, h.Token, `{"outcome":"appropriate"}`); st != 403 {
		t.Fatalf("clinician closed a review: %d", st)
	}
	if st, b := httpCall(t, "POST", root+"/reviews/"+g.ID, h.AuditorToken, `{"outcome":"appropriate"}`); st != 204 {
		t.Fatalf("auditor close: %d %s", st, b)
	}
	if st, _ := httpCall(t, "POST", root+"/reviews/"+g.ID, h.AuditorToken, `{"outcome":"appropriate"}`); st != 409 {
		t.Fatalf("closed twice: %d", st)
	}
	if st, _ := httpCall(t, "POST", root+"/reviews/"+g.ID, "", `{"outcome":"appropriate"}`); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if st, _ := httpCall(t, "POST", root+"/", h.Token, `{"patient":1}`); st != 400 {
		t.Fatalf("malformed body: %d", st)
	}
}
