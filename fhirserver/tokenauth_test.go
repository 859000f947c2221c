package fhirserver

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/auth/authserver"
	"phix/auth/oidc"
	"phix/auth/secretbox"
	"phix/auth/session"
	"phix/suite"
)

const testAudience = "urn:phix:test-fhir"

// ownAS runs the node's authorization server on 127.0.0.1:0.
func ownAS(t *testing.T) *authserver.Server {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "auth.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)") // as devnet opens it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := authserver.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, _ := secretbox.NewKey(suite.Intl, key)
	hs := httptest.NewUnstartedServer(nil)
	as, err := authserver.New(context.Background(), authserver.Config{Issuer: "http://" + hs.Listener.Addr().String() + "/auth", Audience: testAudience, DB: db, Sealer: box})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = http.StripPrefix("/auth", as.Handler())
	hs.Start()
	t.Cleanup(hs.Close)
	return as
}

func bearerEnv(t *testing.T, as *authserver.Server, mod func(*BearerAuthOptions)) (*env, *BearerAuth) {
	t.Helper()
	v, err := oidc.New(oidc.Options{}, oidc.Provider{Issuer: as.Issuer(), Audience: []string{testAudience}, MaxLifetime: authserver.MaxTokenLifetime})
	if err != nil {
		t.Fatal(err)
	}
	o := BearerAuthOptions{Verifier: v}
	if mod != nil {
		mod(&o)
	}
	ba, err := NewBearerAuth(o)
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, openSQLite(t), func(c *Config) { c.Auth = ba }), ba
}

func issue(t *testing.T, as *authserver.Server, p authserver.Principal) string {
	t.Helper()
	if p.Scope == "" {
		p.Scope = "system/*.cruds"
	}
	tok, _, err := as.Issue(p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBearerAuthRolesAndPrincipal(t *testing.T) {
	as := ownAS(t)
	e, ba := bearerEnv(t, as, nil)
	clin := issue(t, as, authserver.Principal{Subject: "svc-a", ClientID: "svc-a", Roles: []string{"clinician"}, Org: "hospital-a", Purpose: "TREAT"})
	aud := issue(t, as, authserver.Principal{Subject: "aud-a", ClientID: "aud-a", Roles: []string{"auditor"}, Scope: "system/AuditEvent.rs"})
	admin := issue(t, as, authserver.Principal{Subject: "sec-a", ClientID: "sec-a", Roles: []string{"security-admin"}})
	two := issue(t, as, authserver.Principal{Subject: "root", ClientID: "root", Roles: []string{"system-admin", "auditor"}})
	unknown := issue(t, as, authserver.Principal{Subject: "x", ClientID: "x", Roles: []string{"superuser"}})
	for _, c := range []struct {
		name, tok, path string
		status          int
	}{
		{"clinician reads clinical data", clin, "/Patient", 200},
		{"auditor refused clinical data", aud, "/Patient", 403},
		{"security admin refused clinical data", admin, "/Patient", 403},
		{"two administrator roles refused", two, "/Patient", 401},
		{"unknown role refused", unknown, "/Patient", 401},
		{"garbage token", "abc.def.ghi", "/Patient", 401},
	} {
		e.token = c.tok
		if r := e.do("GET", c.path, nil); r.status != c.status {
			t.Errorf("%s: %d, want %d", c.name, r.status, c.status)
		}
	}
	// The principal carries what the token says.
	req := newReq("Bearer " + clin)
	req.RemoteAddr = "127.0.0.1:1234"
	p, err := ba.Authenticate(req)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "svc-a" || p.Role != RoleClinician || p.Org != "hospital-a" || p.Purpose != "TREAT" || p.ClientID != "svc-a" || !p.Scopes.Allows("read", "Patient", "system") {
		t.Fatalf("principal %+v", p)
	}
}

func TestBearerAuthLockoutAllowlistIdle(t *testing.T) {
	as := ownAS(t)
	clock := time.Now()
	idle := &session.Idle{Timeout: 10 * time.Minute, Now: func() time.Time { return clock }}
	allow, _ := session.ParseAllowlist("client restricted 10.0.0.0/8\norg hospital-x 192.0.2.0/24")
	e, _ := bearerEnv(t, as, func(o *BearerAuthOptions) { o.Idle = idle; o.Allowlist = allow })
	good := issue(t, as, authserver.Principal{Subject: "svc", ClientID: "svc", Roles: []string{"clinician"}})
	e.token = good
	e.do("GET", "/Patient", nil).want(t, 200)
	// Allowlists: this test connects from 127.0.0.1.
	e.token = issue(t, as, authserver.Principal{Subject: "r", ClientID: "restricted", Roles: []string{"clinician"}})
	e.do("GET", "/Patient", nil).want(t, 401)
	e.token = issue(t, as, authserver.Principal{Subject: "o", ClientID: "other", Org: "hospital-x", Roles: []string{"clinician"}})
	e.do("GET", "/Patient", nil).want(t, 401)
	// Idle: 11 minutes without activity log the session off; the same
	// token stays refused.
	clock = clock.Add(11 * time.Minute)
	e.token = good
	e.do("GET", "/Patient", nil).want(t, 401)
	e.do("GET", "/Patient", nil).want(t, 401)
	// Lockout: five forged tokens claiming svc2 lock svc2, so even its
	// valid, fresh token is refused afterwards; svc3 is not affected, and
	// garbage or expired tokens count against no one.
	valid2 := issue(t, as, authserver.Principal{Subject: "svc2", ClientID: "svc2", Roles: []string{"clinician"}})
	forged := valid2[:strings.LastIndex(valid2, ".")+1] + "AAAA" + valid2[strings.LastIndex(valid2, ".")+5:]
	for range 5 {
		e.token = "not-a-token"
		e.do("GET", "/Patient", nil).want(t, 401)
	}
	e.token = valid2
	e.do("GET", "/Patient", nil).want(t, 200)
	for range 5 {
		e.token = forged
		e.do("GET", "/Patient", nil).want(t, 401)
	}
	e.token = valid2
	e.do("GET", "/Patient", nil).want(t, 401)
	e.token = issue(t, as, authserver.Principal{Subject: "svc3", ClientID: "svc3", Roles: []string{"clinician"}})
	e.do("GET", "/Patient", nil).want(t, 200)
	if a := sourceAddr(&http.Request{RemoteAddr: "[::ffff:127.0.0.1]:80"}); a != netip.MustParseAddr("127.0.0.1") {
		t.Fatal(a)
	}
}
