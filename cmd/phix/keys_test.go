package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/kms"
	"phix/suite"
)

// keysRun runs "phix keys args..." and returns its stdout.
func keysRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	saved := keysOut
	keysOut = keysIO{stdout: &out, stderr: &errOut, now: time.Now}
	defer func() { keysOut = saved }()
	err := commands["keys"].run(context.Background(), args)
	return out.String(), err
}

func keysMust(t *testing.T, args ...string) string {
	t.Helper()
	out, err := keysRun(t, args...)
	if err != nil {
		t.Fatalf("phix keys %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestKeysCLI(t *testing.T) {
	dir := t.TempDir()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	t.Setenv("PHIX_MASTER_KEY", base64.StdEncoding.EncodeToString(master))
	t.Setenv("PHIX_CUSTODIAN_PASSPHRASE", "a custodian passphrase")
	kr := []string{"--dir", filepath.Join(dir, "keys"), "--actor", "ops"}
	with := func(args ...string) []string { return append(args, kr...) }

	out := keysMust(t, with("init", "--hospital", "hospital-a", "--suite", "intl")...)
	if !strings.Contains(out, "created hospital-a/data version 1") || !strings.Contains(out, "hospital-a/signing") {
		t.Fatalf("init: %s", out)
	}
	out = keysMust(t, with("list")...)
	if !strings.Contains(out, "hospital-a/data") || !strings.Contains(out, "local") {
		t.Fatalf("list: %s", out)
	}

	out = keysMust(t, with("rotate", "--kek", "hospital-a/data")...)
	if !strings.Contains(out, "version 2 is current") || !strings.Contains(out, "rotation to version 2 finished") {
		t.Fatalf("rotate: %s", out)
	}
	out = keysMust(t, with("rotate", "--kek", "hospital-a/data", "--resume")...)
	if !strings.Contains(out, "finished") {
		t.Fatalf("resume of a finished job: %s", out)
	}

	// Two custodians, each with a key file; they approve the destruction of version 1.
	for _, c := range []string{"alice", "bob"} {
		keysMust(t, "custodian-new", "--id", c, "--out", filepath.Join(dir, c+".key"))
		keysMust(t, with("enroll", "--public-key", filepath.Join(dir, c+".key.pub"))...)
	}
	approval := func(c string) string {
		p := filepath.Join(dir, c+"-destroy.json")
		keysMust(t, "approve", "--custodian-key", filepath.Join(dir, c+".key"), "--op", kms.OpDestroyKEK,
			"--kek", "hospital-a/data", "--version", "1", "--out", p)
		return p
	}
	a1, a2 := approval("alice"), approval("bob")
	t.Setenv("PHIX_CUSTODIAN_PASSPHRASE", "not the passphrase")
	if _, err := keysRun(t, "approve", "--custodian-key", filepath.Join(dir, "alice.key"), "--kek", "hospital-a/data", "--version", "1"); kms.CodeOf(err) != kms.CodeWrongMasterKey {
		t.Fatalf("approve with a wrong passphrase: %v", err)
	}

	// The operator's second factor: refused without it, with a wrong code,
	// and approvals that fail do not use up a code.
	secondFactor := enrolOperator(t, kr, "hospital-a", "intl", "ops")
	destroy := func(extra ...string) []string {
		return with(append(append([]string{"destroy", "--kek", "hospital-a/data", "--version", "1"}, extra...), secondFactor()...)...)
	}
	_, err := keysRun(t, with("destroy", "--kek", "hospital-a/data", "--version", "1", "--approval", a1, "--approval", a2)...)
	if err == nil || !strings.Contains(err.Error(), "second factor") {
		t.Fatalf("destroy without a second factor: %v", err)
	}
	wrong := with("destroy", "--kek", "hospital-a/data", "--version", "1", "--approval", a1, "--approval", a2,
		"--auth-db", secondFactor()[1], "--totp", "000000")
	if _, err = keysRun(t, wrong...); err == nil || !strings.Contains(err.Error(), "second factor refused") || strings.Contains(err.Error(), "000000") {
		t.Fatalf("destroy with a wrong code: %v", err)
	}
	_, err = keysRun(t, destroy("--approval", a1)...)
	if kms.CodeOf(err) != kms.CodeApprovalRequired {
		t.Fatalf("destroy with one approval: %v", err)
	}
	_, err = keysRun(t, destroy("--approval", a1, "--approval", a1)...)
	if kms.CodeOf(err) != kms.CodeApprovalInvalid {
		t.Fatalf("destroy with the same approval twice: %v", err)
	}
	out = keysMust(t, destroy("--approval", a1, "--approval", a2)...)
	if !strings.Contains(out, "destroyed hospital-a/data version 1") {
		t.Fatalf("destroy: %s", out)
	}
	_, err = keysRun(t, with(append([]string{"destroy", "--kek", "hospital-a/data", "--version", "2", "--approval", a1, "--approval", a2}, secondFactor()...)...)...)
	if kms.CodeOf(err) != kms.CodeApprovalInvalid {
		t.Fatalf("approvals reused for another version: %v", err)
	}
	out = keysMust(t, with("list")...)
	if !strings.Contains(out, "1(destroyed),2") {
		t.Fatalf("list after destroy: %s", out)
	}

	// Escrow: export the signing KEK under dual control, import it elsewhere.
	t.Setenv("PHIX_ESCROW_PASSPHRASE", "an escrow passphrase")
	t.Setenv("PHIX_CUSTODIAN_PASSPHRASE", "a custodian passphrase")
	escrow := filepath.Join(dir, "escrow.key")
	keysMust(t, "escrow-new", "--out", escrow)
	pubB64, _ := os.ReadFile(escrow + ".pub")
	epub, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(pubB64)))
	s, _ := suite.Lookup(suite.Intl)
	rp, err := s.ParseRecipientPublicKey(epub)
	if err != nil {
		t.Fatal(err)
	}
	var exA []string
	for _, c := range []string{"alice", "bob"} {
		p := filepath.Join(dir, c+"-export.json")
		keysMust(t, "approve", "--custodian-key", filepath.Join(dir, c+".key"), "--op", kms.OpExportKEK,
			"--kek", "hospital-a/signing", "--version", "1", "--target", rp.KeyID(), "--out", p)
		exA = append(exA, "--approval", p)
	}
	export := filepath.Join(dir, "signing-v1.json")
	keysMust(t, with(append([]string{"export", "--kek", "hospital-a/signing", "--version", "1", "--recipient", escrow + ".pub", "--out", export}, exA...)...)...)
	other := []string{"--dir", filepath.Join(dir, "recovered"), "--master-key-file", filepath.Join(dir, "recovered.key")}
	keysMust(t, append([]string{"init", "--hospital", "hospital-z", "--new-master-key"}, other...)...)
	out = keysMust(t, append([]string{"import", "--in", export, "--escrow-key", escrow}, other...)...)
	if !strings.Contains(out, "imported hospital-a/signing version 1") {
		t.Fatalf("import: %s", out)
	}

	out = keysMust(t, with("export-public", "--hospital", "hospital-a")...)
	var pubs []kms.PublicKey
	if err := json.Unmarshal([]byte(out), &pubs); err != nil || len(pubs) != 2 || pubs[0].Algorithm != "ML-DSA-87" {
		t.Fatalf("export-public: %v: %s", err, out)
	}

	out = keysMust(t, with("log")...)
	if !strings.Contains(out, `"Action":"destroy"`) || !strings.Contains(out, `"Approvers":["alice","bob"]`) || !strings.Contains(out, `"Actor":"ops"`) {
		t.Fatalf("log: %s", out)
	}
	if strings.Contains(out, base64.StdEncoding.EncodeToString(master)) {
		t.Fatal("master key in the log")
	}
}

func TestKeysCLIErrors(t *testing.T) {
	dir := t.TempDir()
	kr := []string{"--dir", dir}
	t.Setenv("PHIX_MASTER_KEY", "")
	t.Setenv("PHIX_MASTER_PASSPHRASE", "")
	cases := []struct {
		args []string
		want string
	}{
		{nil, "missing subcommand"},
		{[]string{"frobnicate"}, "unknown subcommand"},
		{[]string{"init", "--dir", dir}, "--hospital is required"},
		{[]string{"init", "--hospital", "h"}, "--dir"},
		{append([]string{"list"}, kr...), "no master key"},
		{append([]string{"rotate"}, kr...), "--kek is required"},
		{append([]string{"list", "--backend", "tape"}, kr...), "--backend must be"},
		{[]string{"approve", "--custodian-key", filepath.Join(dir, "none"), "--kek", "x"}, "custodian key file"},
	}
	for _, tc := range cases {
		_, err := keysRun(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("phix keys %v: %v, want %q", tc.args, err, tc.want)
		}
	}

	// A wrong master key is refused with its code.
	mk := make([]byte, 32)
	t.Setenv("PHIX_MASTER_KEY", base64.StdEncoding.EncodeToString(mk))
	keysMust(t, "init", "--hospital", "h", "--dir", dir)
	mk[0] = 1
	t.Setenv("PHIX_MASTER_KEY", base64.StdEncoding.EncodeToString(mk))
	_, err := keysRun(t, "list", "--dir", dir)
	if kms.CodeOf(err) != kms.CodeWrongMasterKey {
		t.Fatalf("wrong master key: %v", err)
	}
	// A generated master key file works and is private.
	mf := filepath.Join(t.TempDir(), "master.key")
	t.Setenv("PHIX_MASTER_KEY", "")
	keysMust(t, "init", "--hospital", "h", "--dir", t.TempDir(), "--master-key-file", mf, "--new-master-key")
	if _, err := keysRun(t, "init", "--hospital", "h", "--dir", t.TempDir(), "--master-key-file", mf, "--new-master-key"); err == nil {
		t.Fatal("--new-master-key overwrote an existing file")
	}
}

// TestKeysCLIRotateProgress creates data keys through the kms package, then
// rotates with the CLI and checks the progress lines and the result.
func TestKeysCLIRotateProgress(t *testing.T) {
	dir := t.TempDir()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	t.Setenv("PHIX_MASTER_KEY", base64.StdEncoding.EncodeToString(master))
	keysMust(t, "init", "--hospital", "h", "--dir", dir)

	ctx := context.Background()
	kf := keyringFlags{dir: dir, backend: "local", suite: "intl"}
	m, closeFn, err := openKeyring(ctx, &kf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if _, err := m.NewDataKey(ctx, "h", kms.KindFile, fmt.Sprintf("f%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	closeFn()

	out := keysMust(t, "rotate", "--kek", "h/data", "--batch", "10", "--dir", dir)
	for _, want := range []string{"25 data keys to re-wrap", "re-wrapped 10/25", "re-wrapped 20/25", "re-wrapped 25/25", "finished (25/25)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotate output lacks %q:\n%s", want, out)
		}
	}
	out = keysMust(t, "list", "--dir", dir)
	if !strings.Contains(out, "to v2 25/25") {
		t.Fatalf("list: %s", out)
	}
	_, err = keysRun(t, "retire", "--kek", "h/data", "--min-version", "2", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
}

func TestKeysCLIRekey(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PHIX_MASTER_KEY", "")
	oldF, newF := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	keysMust(t, "init", "--hospital", "h", "--dir", dir, "--master-key-file", oldF, "--new-master-key")
	out := keysMust(t, "rekey", "--dir", dir, "--master-key-file", oldF, "--new-master-key-file", newF, "--generate")
	if !strings.Contains(out, "re-sealed 5 KEK versions") {
		t.Fatalf("rekey: %s", out)
	}
	if _, err := keysRun(t, "list", "--dir", dir, "--master-key-file", oldF); kms.CodeOf(err) != kms.CodeWrongMasterKey {
		t.Fatalf("old key after rekey: %v", err)
	}
	keysMust(t, "rotate", "--kek", "h/data", "--dir", dir, "--master-key-file", newF)
}
