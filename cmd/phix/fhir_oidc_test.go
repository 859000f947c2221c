package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"phix/auth/authserver"
	"phix/auth/secretbox"
	"phix/suite"
)

// TestFHIRCommandOIDC: with --oidc-issuer the server accepts that
// provider's tokens (a real authorization server with discovery on
// 127.0.0.1:0) and no longer the token files'.
func TestFHIRCommandOIDC(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	adb, err := sql.Open("sqlite", filepath.Join(dir, "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	if err := authserver.Migrate(ctx, adb); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, _ := secretbox.NewKey(suite.Intl, key)
	hs := httptest.NewUnstartedServer(nil)
	idp, err := authserver.New(ctx, authserver.Config{Issuer: "http://" + hs.Listener.Addr().String(), Audience: "urn:phix:test", DB: adb, Sealer: box})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = idp.Handler()
	hs.Start()
	defer hs.Close()

	db := filepath.Join(dir, "fhir.db")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runFHIR(runCtx, []string{"--addr", addr, "--db", db, "--oidc-issuer", idp.Issuer(), "--oidc-audience", "urn:phix:test"})
	}()
	base := "http://" + addr + "/fhir/r4"
	waitUp(t, base+"/metadata")
	tok, _, err := idp.Issue(authserver.Principal{Subject: "dr", ClientID: "app", Scope: "user/*.rs", Roles: []string{"clinician"}})
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, base+"/Patient", tok); st != http.StatusOK {
		t.Fatalf("provider token: %d", st)
	}
	static, _ := os.ReadFile(db + ".token")
	if st := status(t, base+"/Patient", strings.TrimSpace(string(static))); st != http.StatusUnauthorized {
		t.Fatalf("static token accepted with --oidc-issuer: %d", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no graceful shutdown")
	}
	if err := runFHIR(ctx, []string{"--db", db, "--oidc-issuer", idp.Issuer()}); err == nil {
		t.Fatal("--oidc-issuer without --oidc-audience accepted")
	}
}
