package authserver_test

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"phix/auth/authserver"
	"phix/auth/nodeauth"
)

// issuedFixture is a set of access tokens of several users, clients and
// refresh families, all valid when the fixture is made.
type issuedFixture struct {
	tokens map[string]string // name → access token
	rt1    string            // dr-lee/app family F, already rotated
	rt2    string            // dr-lee/app family F, current
}

// newIssuedFixture issues: lee-f1 (code grant, family F), lee-f2 (its
// refresh, family F), lee-g (a second grant of dr-lee to app, family G),
// lee-app2 (dr-lee through app2), ng (dr-ng through app), svc and svc2
// (client_credentials).
func newIssuedFixture(t *testing.T, ee *endpointsEnv) *issuedFixture {
	t.Helper()
	if err := ee.as.SetUser(context.Background(), authserver.User{Name: "dr-ng", Roles: []string{"clinician"}, Patients: []string{"p1"}}, "another long password"); err != nil {
		t.Fatal(err)
	}
	const scope = "offline_access launch/patient patient/*.rs"
	f := &issuedFixture{tokens: map[string]string{}}
	b := ee.codeFlow(t, "app", scope, "dr-lee", "correct horse battery", "p1")
	f.tokens["lee-f1"], f.rt1 = b["access_token"].(string), b["refresh_token"].(string)
	st, b := ee.refresh("app", f.rt1, "")
	if st != 200 {
		t.Fatalf("refresh: %d %v", st, b)
	}
	f.tokens["lee-f2"], f.rt2 = b["access_token"].(string), b["refresh_token"].(string)
	f.tokens["lee-g"] = ee.codeFlow(t, "app", scope, "dr-lee", "correct horse battery", "p1")["access_token"].(string)
	f.tokens["lee-app2"] = ee.codeFlow(t, "app2", scope, "dr-lee", "correct horse battery", "p1")["access_token"].(string)
	f.tokens["ng"] = ee.codeFlow(t, "app", scope, "dr-ng", "another long password", "p1")["access_token"].(string)
	f.tokens["svc"] = ee.svcToken(t, ee.svc, "svc")
	f.tokens["svc2"] = ee.svcToken(t, ee.svc2, "svc2")
	return f
}

// TestRevokeIssuedAccessTokens: for each trigger — RFC 7009 revocation of a
// refresh token, refresh-token reuse, disabling a user, disabling a client
// — the access tokens issued before from that family, user or client are
// refused by the FHIR side's check (nodeauth.RevocationChecked over the
// shared revocation list, as a replica runs it) and are inactive at
// introspection; every other token stays valid on both.
func TestRevokeIssuedAccessTokens(t *testing.T) {
	ctx := context.Background()
	for name, open := range map[string]func(*testing.T, func(*authserver.Config)) *env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		for _, tc := range []struct {
			name    string
			trigger func(t *testing.T, ee *endpointsEnv, f *issuedFixture)
			revoked []string
		}{
			{"revoke refresh token", func(t *testing.T, ee *endpointsEnv, f *issuedFixture) {
				if st, _ := ee.post("/revoke", url.Values{"token": {f.rt2}, "client_id": {"app"}}); st != 200 {
					t.Fatalf("revocation answered %d", st)
				}
			}, []string{"lee-f1", "lee-f2"}},
			{"refresh token reuse", func(t *testing.T, ee *endpointsEnv, f *issuedFixture) {
				if st, _ := ee.refresh("app", f.rt1, ""); st != 400 {
					t.Fatalf("reuse answered %d", st)
				}
			}, []string{"lee-f1", "lee-f2"}},
			{"disable user", func(t *testing.T, ee *endpointsEnv, f *issuedFixture) {
				if err := ee.as.DisableUser(ctx, "dr-lee"); err != nil {
					t.Fatal(err)
				}
			}, []string{"lee-f1", "lee-f2", "lee-g", "lee-app2"}},
			{"disable user's client", func(t *testing.T, ee *endpointsEnv, f *issuedFixture) {
				if err := ee.as.DisableClient(ctx, "app"); err != nil {
					t.Fatal(err)
				}
			}, []string{"lee-f1", "lee-f2", "lee-g", "ng"}},
			{"disable machine client", func(t *testing.T, ee *endpointsEnv, f *issuedFixture) {
				if err := ee.as.DisableClient(ctx, "svc"); err != nil {
					t.Fatal(err)
				}
			}, []string{"svc"}},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				ee := newEndpointsEnv(t, open)
				f := newIssuedFixture(t, ee)
				list := authserver.NewRevokedTokens(ee.db)
				list.Now = ee.clk.Now
				fhir := nodeauth.RevocationChecked(ee.v, ee.issuer, list)
				for n, tok := range f.tokens {
					if _, err := fhir.Verify(ctx, tok); err != nil {
						t.Fatalf("%s before the trigger: %v", n, err)
					}
				}
				tc.trigger(t, ee, f)
				ee.clk.Add(3 * time.Second) // past the list's RefreshEvery
				for n, tok := range f.tokens {
					_, err := fhir.Verify(ctx, tok)
					b := ee.introspect(t, tok)
					if slices.Contains(tc.revoked, n) {
						if err == nil {
							t.Errorf("%s accepted by the FHIR side's check", n)
						}
						if !isInactive(b) {
							t.Errorf("%s introspected as %v", n, b)
						}
						continue
					}
					if err != nil || b["active"] != true {
						t.Errorf("%s no longer valid: %v %v", n, err, b)
					}
				}
			})
		}
	}
}

// TestIssuedPurged: recorded access tokens are purged once past exp plus
// the verifiers' leeway, and a trigger then revokes nothing expired.
func TestIssuedPurged(t *testing.T) {
	for name, open := range map[string]func(*testing.T, func(*authserver.Config)) *env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			ee := newEndpointsEnv(t, open)
			ctx := context.Background()
			count := func(table string) int {
				t.Helper()
				var n int
				if err := ee.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			old := ee.svcToken(t, ee.svc, "svc")
			ee.svcToken(t, ee.svc2, "svc2")
			if n := count("as_issued"); n != 2 {
				t.Fatalf("%d issued rows, want 2", n)
			}
			ee.clk.Add(authserver.MaxTokenLifetime + 2*time.Minute)
			// svc's token expired (its row not yet purged): disabling svc
			// lists nothing.
			if err := ee.as.DisableClient(ctx, "svc"); err != nil {
				t.Fatal(err)
			}
			if n := count("as_revoked"); n != 0 {
				t.Fatalf("%d revoked rows for an expired token", n)
			}
			fresh := ee.svcToken(t, ee.svc2, "svc2")
			var jtis []string
			rows, err := ee.db.Query(`SELECT jti FROM as_issued`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var j string
				rows.Scan(&j)
				jtis = append(jtis, j)
			}
			rows.Close()
			if len(jtis) != 1 || jtis[0] != jtiOf(t, fresh) {
				t.Fatalf("expired issued rows not purged: %v", jtis)
			}
			list := authserver.NewRevokedTokens(ee.db)
			list.Now = ee.clk.Now
			if r, err := list.Revoked(ctx, jtiOf(t, old)); err != nil || r {
				t.Fatalf("expired token listed: %v %v", r, err)
			}
			// Disabling svc2 lists its live token only.
			if err := ee.as.DisableClient(ctx, "svc2"); err != nil {
				t.Fatal(err)
			}
			if n := count("as_revoked"); n != 1 {
				t.Fatalf("%d revoked rows, want 1", n)
			}
		})
	}
}

// TestMigrateIssuedIdempotent: Migrate runs again over a store holding
// issued rows and keeps them.
func TestMigrateIssuedIdempotent(t *testing.T) {
	ee := newEndpointsEnv(t, sqliteEnv)
	ee.svcToken(t, ee.svc, "svc")
	if err := authserver.Migrate(context.Background(), ee.db); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := ee.db.QueryRow(`SELECT COUNT(*) FROM as_issued`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows after a second Migrate: %v", n, err)
	}
}
