package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/internal/testenv"
)

func TestDeidDICOMCLI(t *testing.T) {
	src := "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"
	data, err := os.ReadFile(src)
	if err != nil {
		testenv.Missing(t, "pydicom test files not installed (Debian package python3-pydicom)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.MkdirAll(filepath.Join(in, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(in, "a", "b", "ct.dcm"), data, 0o600)
	os.WriteFile(filepath.Join(in, "broken.dcm"), []byte("Zhang^San MRN0001 not dicom"), 0o600)
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte(strings.Repeat("ab", 32)), 0o600)

	var stdout bytes.Buffer
	err = deidDICOMMain(context.Background(), []string{"--profile", "basic,retain-long-modified", "--key-file", key, in, out}, &stdout)
	if err == nil || !strings.Contains(err.Error(), "PHI-6008") {
		t.Fatalf("want a PHI-6008 failure exit, got %v", err)
	}
	if !strings.Contains(stdout.String(), "1 done, 0 quarantined, 1 failed") {
		t.Errorf("summary %q", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(out, "a", "b", "ct.dcm")); err != nil {
		t.Errorf("mirrored output missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "broken.dcm")); err == nil {
		t.Error("failed file was written")
	}
	q, _ := os.ReadFile(filepath.Join(out+".quarantine", "quarantine.jsonl"))
	if !strings.Contains(string(q), "broken.dcm") || strings.Contains(string(q), "Zhang") {
		t.Errorf("quarantine list %q", q)
	}
	for _, bad := range [][]string{{in, out}, {"--profile", "basic,nope", "--key-file", key, in, out}, {"--key-file", key, in}} {
		if err := deidDICOMMain(context.Background(), bad, &stdout); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
