package fhirserver

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"phix/internal/testenv"
)

// TestSummaryTableCurrent regenerates summary_gen.go from the shared FHIR
// definitions and fails when the committed file differs.
func TestSummaryTableCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	in := testenv.Shared(t, "fhir-r4", "profiles-resources.json")
	out := filepath.Join(t.TempDir(), "summary_gen.go")
	cmd := exec.Command("go", "run", "./internal/gensummary", "-in", in, "-out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gensummary: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("summary_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("summary_gen.go is stale: run go generate ./fhirserver")
	}
}
