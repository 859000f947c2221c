package testenv

import (
	"fmt"
	"os"
	"testing"
)

// ConformanceOutEnv names the file conformance tests append their summary
// line to. `go test` in package-list mode hides a passing test's output, so
// `make test` sets it and prints the file at the end.
const ConformanceOutEnv = "PHIX_CONFORMANCE_OUT"

// ReportConformance logs a conformance summary line and, when
// PHIX_CONFORMANCE_OUT is set, appends it to that file (one write per line,
// so packages testing in parallel do not interleave).
func ReportConformance(t testing.TB, line string) {
	t.Helper()
	t.Log(line)
	path := os.Getenv(ConformanceOutEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("%s: %v", ConformanceOutEnv, err)
	}
	_, werr := fmt.Fprintln(f, line)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		t.Fatalf("%s: write failed: %v %v", ConformanceOutEnv, werr, cerr)
	}
}
