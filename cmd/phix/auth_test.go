package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"phix/auth/authserver"
	"phix/auth/nodeauth"
)

// TestAuthCommand drives `phix auth` on a SQLite store: users (password
// from stdin, separation of duties), backend and public clients, disable,
// and TOTP enrolment printed once and confirmed with a real code.
func TestAuthCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "auth.db")
	run := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := authMain(ctx, append([]string{"--db", db}, args...), strings.NewReader(stdin), &out)
		return out.String(), err
	}
	if _, err := run("correct horse battery\n", "users", "add", "dr-lee", "--roles", "clinician", "--org", "hospital-a", "--fhir-user", "Practitioner/p1", "--patients", "p1,p2"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("short\n", "users", "add", "x", "--roles", "nurse"); err == nil {
		t.Fatal("short password accepted")
	}
	if _, err := run("a long enough password\n", "users", "add", "root", "--roles", "system-admin,auditor"); err == nil {
		t.Fatal("separation of duties not checked")
	}
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("another long password\n"), 0o600)
	if _, err := run("", "users", "add", "nurse-kim", "--roles", "nurse", "--password-file", pw); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	pub := filepath.Join(dir, "svc.pem")
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	if _, err := run("", "clients", "add", "svc", "--public-key", pub, "--scope", "system/Patient.rs", "--roles", "clinician", "--purpose", "TREAT"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("", "clients", "add", "app", "--redirect-uri", "http://127.0.0.1:8765/cb", "--scope", "openid user/*.rs"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("", "clients", "add", "bad", "--scope", "user/*.rs"); err == nil {
		t.Fatal("client with neither keys nor redirect URI accepted")
	}
	if _, err := run("", "clients", "add", "bad", "--public-key", pub, "--scope", "system/Patient.cruds", "--roles", "system-admin,auditor"); err == nil {
		t.Fatal("client roles not checked")
	}
	if err := runDisable(run, "users", "nurse-kim"); err != nil {
		t.Fatal(err)
	}
	if err := runDisable(run, "clients", "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("", "users", "disable", "nobody"); err == nil {
		t.Fatal("disabling an unknown user succeeded")
	}
	out, err := run("", "users", "list")
	if err != nil || !strings.Contains(out, "dr-lee") || !strings.Contains(out, "disabled") || strings.Contains(out, "argon2") {
		t.Fatalf("users list: %v\n%s", err, out)
	}
	out, err = run("", "clients", "list")
	if err != nil || !strings.Contains(out, "svc") || !strings.Contains(out, "backend") || !regexpLine(out, "app", "disabled") {
		t.Fatalf("clients list: %v\n%s", err, out)
	}
	// TOTP: the secret is printed once; confirm with a real code turns
	// the login's second factor on.
	data := filepath.Join(dir, "node")
	out, err = run("", "totp", "enrol", "dr-lee", "--data-dir", data, "--hospital", "hospital-a")
	if err != nil || !strings.Contains(out, "otpauth://totp/") {
		t.Fatalf("enrol: %v\n%s", err, out)
	}
	var secret string
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, "otpauth URI: "); ok {
			u, _ := url.Parse(s)
			secret = u.Query().Get("secret")
		}
	}
	if _, err := run("", "totp", "confirm", "dr-lee", "000000", "--data-dir", data, "--hospital", "hospital-a"); err == nil {
		t.Fatal("a wrong code confirmed the enrolment")
	}
	code, _ := ptotp.GenerateCodeCustom(secret, time.Now(), ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if _, err := run("", "totp", "confirm", "dr-lee", code, "--data-dir", data, "--hospital", "hospital-a"); err != nil {
		t.Fatal(err)
	}
	sdb, err := nodeauth.OpenDB(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	u, err := authserver.NewStore(sdb).User(ctx, "dr-lee")
	if err != nil || !u.TOTPRequired || len(u.Patients) != 2 || u.FHIRUser != "Practitioner/p1" {
		t.Fatalf("%v %+v", err, u)
	}
	var sealed []byte
	var confirmed int
	if err := sdb.QueryRow(`SELECT sealed, confirmed FROM totp_secrets WHERE username = $1`, "dr-lee").Scan(&sealed, &confirmed); err != nil || confirmed != 1 {
		t.Fatalf("enrolment not stored and confirmed: %v", err)
	}
	if secret == "" || bytes.Contains(sealed, []byte(secret)) {
		t.Fatal("TOTP secret stored in clear")
	}
	if _, err := run("", "frobnicate", "x"); err == nil {
		t.Fatal("unknown subcommand accepted")
	}
}

func runDisable(run func(string, ...string) (string, error), kind, name string) error {
	_, err := run("", kind, "disable", name)
	return err
}

func regexpLine(out, first, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return strings.Contains(l, want)
		}
	}
	return false
}
