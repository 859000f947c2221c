package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"phix/audit"
	"phix/auth/authserver"
	"phix/auth/nodeauth"
	"phix/auth/session"
	"phix/fhirserver"
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

// TestAuthTOTPResetAndAllowlist drives `phix auth totp reset` and `phix
// auth allowlist add|list|remove`: the reset clears the enrolment but keeps
// TOTP required (the user must enrol again), the allowlist edits the auth
// store the FHIR servers read, and every change is in the node's audit
// log with pseudonyms only (no user name, client id or address).
func TestAuthTOTPResetAndAllowlist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "auth.db")
	data := filepath.Join(dir, "node")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := authMain(ctx, append([]string{"--db", db}, args...), strings.NewReader("correct horse battery\n"), &out)
		return out.String(), err
	}
	node := []string{"--data-dir", data, "--hospital", "hospital-a"}
	if _, err := run("users", "add", "dr-lee", "--roles", "clinician", "--display-name", "Dr Lee"); err != nil {
		t.Fatal(err)
	}
	out, err := run(append([]string{"totp", "enrol", "dr-lee"}, node...)...)
	if err != nil {
		t.Fatal(err)
	}
	var secret string
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, "otpauth URI: "); ok {
			u, _ := url.Parse(s)
			secret = u.Query().Get("secret")
		}
	}
	code, _ := ptotp.GenerateCodeCustom(secret, time.Now(), ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if _, err := run(append([]string{"totp", "confirm", "dr-lee", code}, node...)...); err != nil {
		t.Fatal(err)
	}
	// Refusals: no node (no audit possible), unknown user, extra argument.
	for _, args := range [][]string{
		{"totp", "reset", "dr-lee"},
		append([]string{"totp", "reset", "nobody"}, node...),
		append([]string{"totp", "reset", "dr-lee", "123456"}, node...),
	} {
		if _, err := run(args...); err == nil {
			t.Fatalf("%v accepted", args)
		}
	}
	if _, err := run(append([]string{"totp", "reset", "dr-lee"}, node...)...); err != nil {
		t.Fatal(err)
	}
	sdb, err := nodeauth.OpenDB(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var n int
	sdb.QueryRow(`SELECT COUNT(*) FROM totp_secrets WHERE username = $1`, "dr-lee").Scan(&n)
	if n != 0 {
		t.Fatal("totp reset left the secret")
	}
	if u, err := authserver.NewStore(sdb).User(ctx, "dr-lee"); err != nil || !u.TOTPRequired || u.DisplayName != "Dr Lee" {
		t.Fatalf("after reset: %v %+v", err, u)
	}
	// The user can enrol again.
	if out, err := run(append([]string{"totp", "enrol", "dr-lee"}, node...)...); err != nil || !strings.Contains(out, "otpauth://") {
		t.Fatalf("enrol after reset: %v", err)
	}

	// Allowlists.
	for _, args := range [][]string{
		{"allowlist", "add", "client", "svc", "10.0.0.0/8"},                                 // no node: not audited, refused
		append([]string{"allowlist", "add", "user", "svc", "10.0.0.0/8"}, node...),          // unknown kind
		append([]string{"allowlist", "add", "client", "svc", "not-a-cidr"}, node...),        // bad prefix
		append([]string{"allowlist", "add", "client", "svc"}, node...),                      // no prefix
		append([]string{"allowlist", "remove", "client", "svc", "192.168.0.0/16"}, node...), // nothing to remove
	} {
		if _, err := run(args...); err == nil {
			t.Fatalf("%v accepted", args)
		}
	}
	if out, err := run(append([]string{"allowlist", "add", "client", "svc", "10.0.0.0/8", "192.0.2.7"}, node...)...); err != nil || !strings.Contains(out, "192.0.2.7/32") {
		t.Fatalf("add: %v %s", err, out)
	}
	if _, err := run(append([]string{"allowlist", "add", "org", "hospital-b", "2001:db8::/32"}, node...)...); err != nil {
		t.Fatal(err)
	}
	out, err = run("allowlist", "list")
	if err != nil || !regexpLine(out, "client", "10.0.0.0/8") || !strings.Contains(out, "192.0.2.7/32") || !regexpLine(out, "org", "2001:db8::/32") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run(append([]string{"allowlist", "remove", "client", "svc", "10.0.0.0/8"}, node...)...); err != nil || strings.Contains(out, "10.0.0.0/8") {
		t.Fatalf("remove one: %v %s", err, out)
	}
	if out, err := run(append([]string{"allowlist", "remove", "org", "hospital-b"}, node...)...); err != nil || !strings.Contains(out, "not restricted") {
		t.Fatalf("remove all: %v %s", err, out)
	}
	es, err := session.NewStoredAllowlist(sdb).List(ctx)
	if err != nil || len(es) != 1 || es[0].ID != "svc" || es[0].Prefix.String() != "192.0.2.7/32" {
		t.Fatalf("stored allowlist: %v %v", es, err)
	}

	// The audit log: one event per change, pseudonyms only.
	static, _ := fhirserver.NewStaticTokens("phix-auth-cli-unused-token")
	nd, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: data, Hospital: "hospital-a", Auth: static})
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	feed, err := nd.Audit.Feed(ctx, -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, fe := range feed.Events {
		var ev audit.Event
		if err := json.Unmarshal(fe.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Decision == nil || len(ev.Decision.Policies) == 0 || !strings.HasPrefix(ev.Decision.Policies[0], "phix-auth:") {
			continue
		}
		// "svc" quoted: three letters may occur inside a base64url pseudonym.
		for _, s := range []string{"dr-lee", `"svc"`, "hospital-b", "10.0.0.0", "192.0.2.7", secret} {
			if bytes.Contains(fe.Event, []byte(s)) {
				t.Fatalf("audit record names %q: %s", s, fe.Event)
			}
		}
		if ev.Who.User == "" || ev.What.ResourceID == "" {
			t.Fatalf("audit record without actor or object: %s", fe.Event)
		}
		seen = append(seen, ev.Decision.Policies[0])
	}
	want := "phix-auth:totp-reset,phix-auth:allowlist-add,phix-auth:allowlist-add,phix-auth:allowlist-remove,phix-auth:allowlist-remove"
	if strings.Join(seen, ",") != want {
		t.Fatalf("audited %v", seen)
	}
}

// TestAuthClientIntrospect: --introspect marks a client with keys as a
// resource server; a public app cannot be one.
func TestAuthClientIntrospect(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "auth.db")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := authMain(ctx, append([]string{"--db", db}, args...), strings.NewReader(""), &out)
		return out.String(), err
	}
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	pub := filepath.Join(dir, "rs.pem")
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	if _, err := run("clients", "add", "rs", "--public-key", pub, "--scope", "system/Patient.rs", "--introspect"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("clients", "add", "app", "--redirect-uri", "http://127.0.0.1:8765/cb", "--scope", "openid", "--introspect"); err == nil {
		t.Fatal("a public app registered for introspection")
	}
	if out, err := run("clients", "list"); err != nil || !regexpLine(out, "rs", "introspect") {
		t.Fatalf("list: %v\n%s", err, out)
	}
}

// TestAuthClientEHR: --ehr marks a client with keys as an EHR (stored, and
// shown by the listing); a public app cannot be one, and a client added
// without it is not one.
func TestAuthClientEHR(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "auth.db")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := authMain(ctx, append([]string{"--db", db}, args...), strings.NewReader(""), &out)
		return out.String(), err
	}
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	pub := filepath.Join(dir, "ehr.pem")
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	if _, err := run("clients", "add", "ehr", "--public-key", pub, "--scope", "system/Patient.rs", "--ehr"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("clients", "add", "svc", "--public-key", pub, "--scope", "system/Patient.rs"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("clients", "add", "app", "--redirect-uri", "http://127.0.0.1:8765/cb", "--scope", "openid", "--ehr"); err == nil {
		t.Fatal("a public app registered as an EHR")
	}
	out, err := run("clients", "list")
	if err != nil || !regexpLine(out, "ehr", "backend,ehr") || regexpLine(out, "svc", "ehr") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	sdb, err := nodeauth.OpenDB(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	for id, want := range map[string]bool{"ehr": true, "svc": false} {
		c, err := authserver.NewStore(sdb).Client(ctx, id)
		if err != nil || c.EHR != want {
			t.Fatalf("%s: stored EHR flag %v, want %v (%v)", id, c != nil && c.EHR, want, err)
		}
	}
}
