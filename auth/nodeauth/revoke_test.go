package nodeauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"phix/auth/authserver"
	"phix/auth/nodeauth"
	"phix/auth/session"
	"phix/internal/testenv"
)

// get reads path with tok and returns the status and, for a refusal, the
// OperationOutcome's resourceType.
func (n *node) get(t *testing.T, tok, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.base+"/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		ResourceType string `json:"resourceType"`
	}
	json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body.ResourceType
}

// until polls cond until it holds or a generous deadline passes (the
// bound under test is a refresh interval of milliseconds; the deadline
// only keeps a loaded machine from failing the test).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRevokedTokenRefused: over real HTTP, on SQLite and PostgreSQL, a
// machine client revokes its access token at /auth/revoke; the FHIR server
// then answers 401 with an OperationOutcome for that token, while a second
// replica's authenticator on the same store (its own cache) refuses it
// too. A fresh token works: using a revoked token does not lock the
// principal out.
func TestRevokedTokenRefused(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": func(testing.TB) string { return "" }, "postgres": testenv.Postgres} {
		t.Run(name, func(t *testing.T) {
			n := startNodeDB(t, dsn(t))
			ctx := context.Background()
			if st := n.do(t, n.seeder, "PUT", "Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Demo"}]}`); st/100 != 2 {
				t.Fatalf("seed: %d", st)
			}
			tok, err := n.seeder.Fresh(ctx)
			if err != nil {
				t.Fatal(err)
			}
			replica, err := nodeauth.NewBearerAuth(n.root+nodeauth.AuthPath, n.base, nil, n.db)
			if err != nil {
				t.Fatal(err)
			}
			onReplica := func() error {
				r := httptest.NewRequest("GET", n.base+"/Patient/p1", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set("Authorization", "Bearer "+tok)
				_, err := replica.Authenticate(r)
				return err
			}
			if st, _ := n.get(t, tok, "Patient/p1"); st != 200 {
				t.Fatalf("before revocation: %d", st)
			}
			if err := onReplica(); err != nil {
				t.Fatalf("replica before revocation: %v", err)
			}
			if err := n.seeder.Revoke(ctx, tok); err != nil {
				t.Fatal(err)
			}
			until(t, "FHIR server refuses the revoked token", func() bool { st, _ := n.get(t, tok, "Patient/p1"); return st == 401 })
			if st, rt := n.get(t, tok, "Patient/p1"); st != 401 || rt != "OperationOutcome" {
				t.Fatalf("revoked token: %d %q", st, rt)
			}
			until(t, "the replica refuses the revoked token", func() bool { return onReplica() != nil })
			// The refusals are audited (auth-failure alerts) without the token.
			feed, err := n.audit.Feed(ctx, -1, 1000)
			if err != nil {
				t.Fatal(err)
			}
			alerts := 0
			for _, fe := range feed.Events {
				if bytes.Contains(fe.Event, []byte("auth-failure")) {
					alerts++
				}
				for _, part := range strings.Split(tok, ".") {
					if bytes.Contains(fe.Event, []byte(part)) {
						t.Fatalf("audit record holds part of the token: %s", fe.Event)
					}
				}
			}
			if alerts == 0 {
				t.Fatal("the refusal of the revoked token was not audited (the leak check would be vacuous)")
			}
			// More uses of the revoked token than the lockout threshold, then a fresh token works.
			for range 6 {
				n.get(t, tok, "Patient/p1")
			}
			if st := n.do(t, n.seeder, "GET", "Patient/p1", ""); st != 200 {
				t.Fatalf("a fresh token after the revocation: %d", st)
			}
		})
	}
}

// TestStoredAllowlistEnforced: an allowlist entry written to the auth store
// (as `phix auth allowlist add` does) restricts the client on the running
// FHIR server; removing it lifts the restriction.
func TestStoredAllowlistEnforced(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	if st := n.do(t, n.seeder, "PUT", "Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Demo"}]}`); st/100 != 2 {
		t.Fatalf("seed: %d", st)
	}
	al := session.NewStoredAllowlist(n.db)
	if err := al.Add(ctx, "client", n.seeder.ID, netip.MustParsePrefix("10.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	until(t, "the allowlist refuses 127.0.0.1", func() bool { return n.do(t, n.seeder, "GET", "Patient/p1", "") == 401 })
	if err := al.Add(ctx, "client", n.seeder.ID, netip.MustParsePrefix("127.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	until(t, "the allowlist admits 127.0.0.1 again", func() bool { return n.do(t, n.seeder, "GET", "Patient/p1", "") == 200 })
	if err := al.Add(ctx, "org", "hospital-a", netip.MustParsePrefix("192.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	until(t, "the organisation's list applies too", func() bool { return n.do(t, n.seeder, "GET", "Patient/p1", "") == 401 })
	if k, err := al.Remove(ctx, "org", "hospital-a", netip.Prefix{}); err != nil || k != 1 {
		t.Fatalf("remove: %d %v", k, err)
	}
	until(t, "removing the organisation's list", func() bool { return n.do(t, n.seeder, "GET", "Patient/p1", "") == 200 })
}

// TestDisabledClientTokenRefused: over real HTTP, on SQLite and PostgreSQL,
// disabling a client in the auth store (as `phix auth clients disable`
// does) puts its access token issued before on the revocation list: the
// FHIR server answers 401 with an OperationOutcome for it, before the
// token expires. Another client's token still authenticates.
func TestDisabledClientTokenRefused(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": func(testing.TB) string { return "" }, "postgres": testenv.Postgres} {
		t.Run(name, func(t *testing.T) {
			n := startNodeDB(t, dsn(t))
			ctx := context.Background()
			if st := n.do(t, n.seeder, "PUT", "Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Demo"}]}`); st/100 != 2 {
				t.Fatalf("seed: %d", st)
			}
			tok, err := n.seeder.Fresh(ctx)
			if err != nil {
				t.Fatal(err)
			}
			other, err := n.gw.Fresh(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := n.get(t, tok, "Patient/p1"); st != 200 {
				t.Fatalf("before disabling: %d", st)
			}
			if st, _ := n.get(t, other, "Patient/p1"); st == 401 {
				t.Fatal("the other client's token is refused before disabling")
			}
			if err := authserver.NewStore(n.db).DisableClient(ctx, n.seeder.ID); err != nil {
				t.Fatal(err)
			}
			until(t, "FHIR server refuses the disabled client's token", func() bool { st, _ := n.get(t, tok, "Patient/p1"); return st == 401 })
			if st, rt := n.get(t, tok, "Patient/p1"); st != 401 || rt != "OperationOutcome" {
				t.Fatalf("disabled client's token: %d %q", st, rt)
			}
			if st, _ := n.get(t, other, "Patient/p1"); st == 401 {
				t.Fatal("the other client's token is refused after disabling")
			}
		})
	}
}
