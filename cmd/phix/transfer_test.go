package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/devnet"
)

// TestTransferCLI runs the README walkthrough against an in-process dev
// network: send the demo patient's record and a file from A to B, receive
// at B, list and status at A; then the refusals and their exit statuses.
func TestTransferCLI(t *testing.T) {
	dir := t.TempDir()
	n, err := devnet.Start(context.Background(), devnet.Options{DataDir: dir, BasePort: -1, NoAutoReceive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "scan.pdf")
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	copy(data, "%PDF-1.7\n")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := transferMain(ctx, args, &out, &errb)
		return out.String(), errb.String(), err
	}
	as := []string{"--dev", dir, "--hospital", "hospital-a"}
	bs := []string{"--dev", dir, "--hospital", "hospital-b"}
	out, errOut, err := run(append(append([]string{"send"}, as...), "--to", "hospital-b", "--purpose", "TREAT",
		"--consent", n.Demo.Consent, "--fhir", n.Demo.Patient+"/$everything", file)...)
	if err != nil {
		t.Fatalf("send: %v\n%s", err, errOut)
	}
	id := strings.TrimSpace(out)
	if !strings.HasPrefix(id, "t") || strings.Contains(id, "\n") {
		t.Fatalf("send printed %q, want one transfer id", out)
	}
	if !strings.Contains(errOut, "uploading 100%") || !strings.Contains(errOut, id+" sent") {
		t.Fatalf("progress lines: %q", errOut)
	}
	recv := t.TempDir()
	out, errOut, err = run(append(append([]string{"receive"}, bs...), "--out", recv)...)
	if err != nil || !strings.Contains(out, id+" from hospital-a (TREAT)") {
		t.Fatalf("receive: %v %q %q", err, out, errOut)
	}
	got, err := os.ReadFile(filepath.Join(recv, id, "scan.pdf"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received file differs: %v", err)
	}
	out, _, err = run(append([]string{"status", id}, as...)...)
	if err != nil || !strings.Contains(out, "status:    delivered") {
		t.Fatalf("status: %v %q", err, out)
	}
	out, _, err = run(append([]string{"list"}, as...)...)
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("list: %v %q", err, out)
	}

	// A DLP finding blocks the send: exit 3, kind and location, never the value.
	csv := filepath.Join(t.TempDir(), "cohort.csv")
	if err := os.WriteFile(csv, []byte("id,note\n1,SSN 536-22-1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = run(append(append([]string{"send"}, as...), "--to", "hospital-b", "--purpose", "HRESCH", "--consent", n.Demo.Consent, csv)...)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitRefused || !strings.Contains(errOut, "US_SSN in file 0 at row 2, col 2") || strings.Contains(errOut+err.Error(), "536-22-1234") {
		t.Fatalf("DLP block: %v %q", err, errOut)
	}
	// No consent for the purpose: exit 3.
	_, _, err = run(append(append([]string{"send"}, as...), "--to", "hospital-b", "--purpose", "HPAYMT", "--consent", n.Demo.Consent, "--fhir", n.Demo.Patient+"/$everything")...)
	if !errors.As(err, &ee) || ee.code != exitRefused || !strings.Contains(err.Error(), "GW-1101") {
		t.Fatalf("consent refusal: %v", err)
	}
	// Usage: exit 2.
	if _, _, err = run("send", "--dev", dir); !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("usage: %v", err)
	}
	// A stopped network: exit 5.
	n.Close()
	if _, _, err = run(append([]string{"list"}, as...)...); !errors.As(err, &ee) || ee.code != exitUnreachable {
		t.Fatalf("unreachable: %v", err)
	}
}
