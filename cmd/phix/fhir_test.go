package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"phix/internal/testenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitUp(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never came up", url)
}

func status(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestFHIRCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "fhir.db")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runFHIR(ctx, []string{"--addr", addr, "--db", db}) }()
	base := "http://" + addr + "/fhir/r4"
	waitUp(t, base+"/metadata")
	tok, err := os.ReadFile(db + ".token")
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, base+"/Patient", ""); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if st := status(t, base+"/Patient", strings.TrimSpace(string(tok))); st != 200 {
		t.Fatalf("with token: %d", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no graceful shutdown")
	}
	// Bad flags fail with exit status 2.
	if err := runFHIR(context.Background(), []string{"--addr", addr}); err == nil {
		t.Fatal("missing --db accepted")
	}
	if err := runFHIR(context.Background(), []string{"--db", "postgres://x@127.0.0.1:1/db"}); err == nil {
		t.Fatal("postgres without --token-file accepted")
	}
}

func TestFHIRCommandPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	tokenFile := filepath.Join(t.TempDir(), "pg.token")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runFHIR(ctx, []string{"--addr", addr, "--db", dsn, "--token-file", tokenFile}) }()
	base := "http://" + addr + "/fhir/r4"
	waitUp(t, base+"/metadata")
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, base+"/Patient", strings.TrimSpace(string(tok))); st != 200 {
		t.Fatalf("with token: %d", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestDevCommand(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDev(ctx, []string{"--data", dir, "--base-port", strconv.Itoa(port), "--quiet"}) }()
	waitUp(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/fhir/r4/metadata")
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(filepath.Join(dir, "dev", "endpoints.json")); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	for _, f := range []string{"endpoints.json", "hospital-a.token", "hospital-b.token"} {
		if _, err := os.Stat(filepath.Join(dir, "dev", f)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no graceful shutdown")
	}
}

// TestFHIRPolicyNeedsOIDC: enforcement decides on a token's scopes and
// roles, which static tokens do not carry, so --policy alone is refused.
func TestFHIRPolicyNeedsOIDC(t *testing.T) {
	dir := t.TempDir()
	err := runFHIR(context.Background(), []string{"--db", filepath.Join(dir, "fhir.db"), "--policy", filepath.Join(dir, "policy")})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("--policy without --oidc-issuer: %v", err)
	}
}
