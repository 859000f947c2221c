package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/audit/audittest"
)

func auditRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	auditStdout = &out
	defer func() { auditStdout = os.Stdout }()
	code := run(append([]string{"audit"}, args...), &errb)
	return code, out.String(), errb.String()
}

func TestAuditCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	b, err := auditsqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	p := audittest.Pseudonyms(t)
	l := audittest.OpenLog(t, b, nil)
	for i := 0; i < 12; i++ {
		if _, err := l.Append(ctx, audittest.SampleEvent(p, i, audit.ActionRead)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vkey := l.Signer().VerifierKey()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	trusted := filepath.Join(dir, "trusted.note")
	keyFile := filepath.Join(dir, "audit.vkey")
	_ = os.WriteFile(trusted, cp.Note, 0o600)
	_ = os.WriteFile(keyFile, []byte(vkey+"\n"), 0o600)

	if code, out, errs := auditRun(t, "verify", "--db", "sqlite:"+path, "--trusted", trusted, "--key", "@"+keyFile); code != 0 || !strings.Contains(out, `"ok":true`) {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}
	if code, out, _ := auditRun(t, "verify", "--db", path); code != 0 || !strings.Contains(out, "warning") {
		t.Fatalf("verify without keys: %d %s", code, out)
	}
	code, out, errs := auditRun(t, "prove", "--db", path, "5")
	if code != 0 {
		t.Fatalf("prove: %d %s", code, errs)
	}
	proof := filepath.Join(dir, "proof.json")
	_ = os.WriteFile(proof, []byte(out), 0o600)
	if code, out, errs := auditRun(t, "check", "--proof", proof, "--key", vkey); code != 0 || !strings.Contains(out, "proof OK") {
		t.Fatalf("check: %d %s %s", code, out, errs)
	}
	// A proof edited to claim another index fails.
	_ = os.WriteFile(proof, []byte(strings.Replace(out, `"index": 5`, `"index": 6`, 1)), 0o600)
	if code, _, _ := auditRun(t, "check", "--proof", proof, "--key", vkey); code != 3 {
		t.Fatalf("check of an edited proof: exit %d", code)
	}
	for _, args := range [][]string{{}, {"bogus"}, {"prove", "--db", path}, {"prove", "--db", path, "x"}, {"verify"}, {"prove", "--db", path, "99"}} {
		if code, _, _ := auditRun(t, args...); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}

	// Tamper with event 4 and verify names it.
	if _, err := b.DB().Exec("UPDATE audit_events SET body = CAST(REPLACE(CAST(body AS TEXT), '\"outcome\":\"success\"', '\"outcome\":\"major-failure\"') AS BLOB) WHERE idx = 4"); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	code, out, errs = auditRun(t, "verify", "--db", path, "--key", vkey)
	if code != 3 || !strings.Contains(errs, "index 4") || !strings.Contains(errs, string(audit.FailLeafMismatch)) || !strings.Contains(out, `"ok":false`) {
		t.Fatalf("verify after tampering: %d %s %s", code, out, errs)
	}
}

func TestAuditExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	b, err := auditsqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	p := audittest.Pseudonyms(t)
	l := audittest.OpenLog(t, b, nil)
	for i := 0; i < 30; i++ {
		if _, err := l.Append(ctx, audittest.SampleEvent(p, i, audit.ActionRead)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "siem.jsonl")
	if code, stdout, errs := auditRun(t, "export", "--db", path, "--to", "file:"+out, "--once", "--batch", "7"); code != 0 || !strings.Contains(stdout, "delivered 30 events") {
		t.Fatalf("export: %d %q %s", code, stdout, errs)
	}
	// The cursor lives in the database: a second run has nothing to send.
	if code, stdout, errs := auditRun(t, "export", "--db", path, "--to", "file:"+out, "--once"); code != 0 || !strings.Contains(stdout, "delivered 0 events") {
		t.Fatalf("second export: %d %q %s", code, stdout, errs)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 30 {
		t.Fatalf("%d lines in the sink, want 30", n)
	}
	for _, args := range [][]string{
		{"export", "--db", path},
		{"export", "--db", path, "--to", "relp:127.0.0.1:1"},
		{"export", "--db", path, "--to", "relp://127.0.0.1:1"}, // no TLS material
		{"export", "--db", path, "--to", "ftp://127.0.0.1:1", "--ca", out, "--cert", out, "--key", out},
		{"export", "--db", path, "--to", "file:" + out, "--batch", "0"},
		{"export", "--db", path, "--to", "file:" + out, "extra"},
	} {
		if code, _, _ := auditRun(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
