package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFHIRCommandAuthServer: `phix fhir --auth-server` runs its own
// authorization server and enforces without an external IdP: the token
// files hold its tokens, the auditor's reads no patient, a user added with
// `phix auth` logs in through the SMART authorization-code flow (PKCE) and
// gets an access token, an ID token and a refresh token the server accepts.
func TestFHIRCommandAuthServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "fhir.db")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runFHIR(runCtx, []string{"--addr", addr, "--db", db, "--auth-server", "--hospital", "hospital-a"})
	}()
	base := "http://" + addr + "/fhir/r4"
	waitUp(t, base+"/metadata")
	read := func(name string) string {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
			if b, _ := os.ReadFile(filepath.Join(dir, name)); strings.Count(string(b), ".") == 2 {
				return strings.TrimSpace(string(b))
			}
		}
		t.Fatalf("%s never held a token", name)
		return ""
	}
	admin, auditor := read("fhir.db.token"), read("fhir.db.auditor.token")
	for _, c := range []struct {
		url, token string
		want       int
	}{
		{base + "/Patient", admin, 200},
		{base + "/Patient", auditor, 403},
		{base + "/Patient", "", 401},
		{base + "/Patient", "a-static-token-of-sufficient-length", 401},
		{base + "/.well-known/smart-configuration", "", 200},
		{"http://" + addr + "/auth/jwks", "", 200},
	} {
		if st := status(t, c.url, c.token); st != c.want {
			t.Fatalf("%s: %d, want %d", c.url, st, c.want)
		}
	}
	// A user and a public app added with phix auth on the running server's store.
	adb := filepath.Join(dir, "auth.db")
	const redirect = "http://127.0.0.1:1/cb"
	if err := authMain(ctx, []string{"--db", adb, "users", "add", "dr-lee", "--roles", "clinician", "--fhir-user", "Practitioner/p1"}, strings.NewReader("correct horse battery\n"), io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := authMain(ctx, []string{"--db", adb, "clients", "add", "app", "--redirect-uri", redirect, "--scope", "openid fhirUser offline_access user/*.rs"}, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	vb := make([]byte, 32)
	rand.Read(vb)
	verifier := base64.RawURLEncoding.EncodeToString(vb)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect}, "scope": {"openid fhirUser offline_access user/Patient.rs"},
		"state": {"s"}, "aud": {base}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get("http://" + addr + "/auth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="request" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no login form: %d", res.StatusCode)
	}
	res, err = noFollow.PostForm("http://"+addr+"/auth/authorize", url.Values{"request": {string(m[1])}, "username": {"dr-lee"}, "password": {"correct horse battery"}})
	if err != nil || res.StatusCode != http.StatusFound {
		t.Fatalf("login: %v %v", err, res)
	}
	res.Body.Close()
	loc, _ := url.Parse(res.Header.Get("Location"))
	res, err = http.PostForm("http://"+addr+"/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {redirect}, "client_id": {"app"}, "code_verifier": {verifier}})
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	at, _ := tok["access_token"].(string)
	if res.StatusCode != 200 || at == "" || tok["id_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("token response %d %v", res.StatusCode, tok["error"])
	}
	if st := status(t, base+"/Patient", at); st != 200 {
		t.Fatalf("the user's token: %d", st)
	}
	if st := status(t, base+"/Observation", at); st != 403 {
		t.Fatalf("a scope the user was not granted: %d", st)
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
	if err := runFHIR(ctx, []string{"--db", db, "--policy", filepath.Join(dir, "p")}); err == nil {
		t.Fatal("--policy without --oidc-issuer or --auth-server accepted")
	}
}
