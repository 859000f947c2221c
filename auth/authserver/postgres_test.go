package authserver_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"phix/auth/authserver"
	"phix/internal/testenv"
)

// TestPostgres runs the state-bearing paths on PostgreSQL: sealed keys
// across a restart and rotation, clients, and the persisted jti replay cache.
func TestPostgres(t *testing.T) {
	db, err := sql.Open("pgx", testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := newEnvDB(t, db, nil)
	ctx := context.Background()
	k := genClientKey(t, "ES384")
	if err := e.as.RegisterClient(ctx, authserver.Client{ID: "svc", JWKS: k.jwks(), Scope: "system/Patient.rs", ClientCredentials: true, Roles: []string{"clinician"}}); err != nil {
		t.Fatal(err)
	}
	a := e.assertion(k, "svc", nil)
	st, body := e.clientCredentials(a, "system/Patient.rs")
	if st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	if _, err := e.v.Verify(ctx, body["access_token"].(string)); err != nil {
		t.Fatal(err)
	}
	kid := e.as.JWKS().Keys[0].KeyID
	e.open()
	if e.as.JWKS().Keys[0].KeyID != kid {
		t.Fatal("signing key not persisted on PostgreSQL")
	}
	if err := e.as.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if len(e.as.JWKS().Keys) != 2 {
		t.Fatal("rotation on PostgreSQL")
	}
	if st, _ := e.clientCredentials(a, "system/Patient.rs"); st != 401 {
		t.Fatal("jti replay accepted on PostgreSQL")
	}
	// Refresh-token rotation and reuse detection on PostgreSQL.
	setupApp(t, e)
	rt := e.codeFlow(t, "app", "offline_access launch/patient patient/*.rs", "dr-lee", "correct horse battery", "p1")["refresh_token"].(string)
	st, b := e.refresh("app", rt, "")
	if st != 200 || b["patient"] != "p1" {
		t.Fatalf("refresh on PostgreSQL: %d %v", st, b)
	}
	if st, _ := e.refresh("app", rt, ""); st != 400 {
		t.Fatal("refresh token reuse accepted on PostgreSQL")
	}
	if st, _ := e.refresh("app", b["refresh_token"].(string), ""); st != 400 {
		t.Fatal("family not revoked on PostgreSQL")
	}
	if err := e.as.DisableClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if cs, err := e.as.Clients(ctx); err != nil || len(cs) != 3 || !cs[0].Disabled {
		t.Fatalf("clients on PostgreSQL: %v %+v", err, cs)
	}
}

// postgresEnv is newEnv on a fresh PostgreSQL database.
func postgresEnv(t *testing.T, mod func(*authserver.Config)) *env {
	t.Helper()
	db, err := sql.Open("pgx", testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvDB(t, db, mod)
}
