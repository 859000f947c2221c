package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runDLPTest(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := dlpCmd(context.Background(), args, strings.NewReader(stdin), &out)
	return out.String(), err
}

func TestDLPScanJSONL(t *testing.T) {
	notes := `{"id": "n1", "lang": "zh", "text": "患者吴丽，电话13033907579。"}
{"id": 7, "text": "Patient John Smith, SSN 411-14-4767."}

{"id": "n3", "text": "no phi here"}
`
	out, err := runDLPTest(t, notes, "scan", "--jsonl", "-")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"n1","findings":[{"start":2,"end":4,"type":"NAME","score":0.85},{"start":7,"end":18,"type":"PHONE","score":0.85}]}
{"id":7,"findings":[{"start":8,"end":18,"type":"NAME","score":0.85},{"start":24,"end":35,"type":"US_SSN","score":0.9}]}
{"id":"n3","findings":[]}
`
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if strings.Contains(out, "13033907579") || strings.Contains(out, "Smith") {
		t.Error("output holds a value")
	}
}

func TestDLPScanPolicyExit(t *testing.T) {
	notes := `{"id": "n1", "text": "SSN 411-14-4767"}` + "\n"
	_, err := runDLPTest(t, notes, "scan", "--policy", "default=warn,US_SSN=block", "--jsonl", "-")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitBlocked || strings.Contains(err.Error(), "411") {
		t.Fatalf("err %v", err)
	}
	if _, err := runDLPTest(t, notes, "scan", "--policy", "default=warn", "--jsonl", "-"); err != nil {
		t.Fatalf("warn policy: %v", err)
	}
	if _, err := runDLPTest(t, notes, "scan", "--policy", "SSN=nope", "--jsonl", "-"); !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("bad policy: %v", err)
	}
}

func TestDLPScanBadInput(t *testing.T) {
	secret := `{"id": "n1", "text": "13033907579"` // truncated
	_, err := runDLPTest(t, secret, "scan", "--jsonl", "-")
	if err == nil || strings.Contains(err.Error(), "13033907579") || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err %v", err)
	}
	for _, args := range [][]string{{}, {"scan"}, {"scan", "--jsonl", "x", "y"}, {"nope"}} {
		if _, err := runDLPTest(t, "", args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestDLPScanFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	txt := write("note.txt", "Follow-up.\nContact Mary Brown at li488@hospital.example.org")
	js := write("p.json", `{"resourceType":"Patient","telecom":[{"system":"phone","value":"13033907579"}]}`)
	csv := write("c.csv", "name,phone\nMary Brown,415-854-9333\n")
	bad := write("bad.json", `{"resourceType":`)
	out, err := runDLPTest(t, "", "scan", "--policy", "default=redact", txt, js, csv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var f fileFinding
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatal(err)
		}
		got = append(got, filepath.Base(f.File)+" "+f.Location+" "+string(f.Type)+" "+string(f.Action))
	}
	want := []string{
		"note.txt line 2, col 9 NAME redact", "note.txt line 2, col 23 EMAIL redact",
		"p.json Patient.telecom[0].value PHONE redact",
		"c.csv row 2, col 1 (name) NAME redact", "c.csv row 2, col 2 (phone) PHONE redact",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
	if strings.Contains(out, "Mary") || strings.Contains(out, "13033907579") {
		t.Error("output holds a value")
	}
	if _, err := runDLPTest(t, "", "scan", bad); err == nil || !strings.Contains(err.Error(), "dlp.invalid-json") {
		t.Errorf("bad json: %v", err)
	}
}

func TestDLPScanPatientHints(t *testing.T) {
	dir := t.TempDir()
	pat := filepath.Join(dir, "patient.json")
	if err := os.WriteFile(pat, []byte(`{"resourceType":"Patient","name":[{"family":"Nakamura","given":["Keiko"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	notes := `{"id": "n1", "text": "nakamura keiko came back"}` + "\n"
	out, err := runDLPTest(t, notes, "scan", "--patient", pat, "--jsonl", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `{"start":0,"end":14,"type":"NAME","score":0.95}`) {
		t.Errorf("got %s", out)
	}
	if _, err := runDLPTest(t, notes, "scan", "--patient", filepath.Join(dir, "missing.json"), "--jsonl", "-"); err == nil {
		t.Error("missing patient file accepted")
	}
}

func TestDLPReadLineBound(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", 100)+"\nshort\n"), 16)
	if _, err := readLine(r, 50); !errors.Is(err, errLineTooLong) {
		t.Fatalf("err %v", err)
	}
	r = bufio.NewReaderSize(strings.NewReader("abc\nlast"), 16)
	if l, err := readLine(r, 50); err != nil || string(l) != "abc\n" {
		t.Fatalf("%q %v", l, err)
	}
	if l, err := readLine(r, 50); err != io.EOF || string(l) != "last" {
		t.Fatalf("%q %v", l, err)
	}
}
