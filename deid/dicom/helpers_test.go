package dicom

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"phix/deid"
	"phix/internal/testenv"
	"phix/suite"
)

func testPseudonymizer(t testing.TB) *deid.Pseudonymizer {
	t.Helper()
	keys, err := deid.DeriveKeys(suite.Intl, bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := deid.NewPseudonymizer(keys, deid.DateShiftRange{})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func newTestDeid(t testing.TB, profile string) *Deidentifier {
	t.Helper()
	cfg, err := NewConfig(profile, testPseudonymizer(t))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, "%s not installed (Debian package: %s)", name, map[string]string{
			"dcmdump": "dcmtk", "dump2dcm": "dcmtk", "dciodvfy": "dicom3tools", "gdcmanon": "libgdcm-tools", "python3": "python3-pydicom"}[name])
	}
	return p
}

// makeDICOM renders testdata/cn_ct.dump.tmpl under charset (re-encoding the
// text) and converts it with dcmtk's dump2dcm.
func makeDICOM(t testing.TB, dir, charset, n, burned string) string {
	t.Helper()
	tmpl, err := os.ReadFile("testdata/cn_ct.dump.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("{{CHARSET}}", charset, "{{N}}", n, "{{BURNED}}", burned).Replace(string(tmpl))
	data := []byte(s)
	if charset == "GB18030" {
		if data, err = simplifiedchinese.GB18030.NewEncoder().Bytes(data); err != nil {
			t.Fatal(err)
		}
	}
	dump := filepath.Join(dir, "f"+n+".dump")
	out := filepath.Join(dir, "f"+n+".dcm")
	if err := os.WriteFile(dump, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(tool(t, "dump2dcm"), "-q", dump, out).CombinedOutput(); err != nil {
		t.Fatalf("dump2dcm: %v\n%s", err, b)
	}
	return out
}

// dcmdumpProblems returns dcmdump's warning and error lines for a file,
// and fails if dcmdump cannot read it.
func dcmdumpProblems(t testing.TB, path string) map[string]bool {
	t.Helper()
	cmd := exec.Command(tool(t, "dcmdump"), path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = nil
	err := cmd.Run()
	out := map[string]bool{}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "W:") || strings.HasPrefix(l, "E:") || strings.HasPrefix(l, "F:") {
			out[l] = true
		}
	}
	if err != nil {
		out["exit: "+err.Error()] = true
	}
	return out
}

var uidPattern = regexp.MustCompile(`\b[0-9]+(\.[0-9]+)*\b`)

// dciodvfyUnreadable is dciodvfy's line for an input it cannot read (it
// does not read deflated files): its error set is then not comparable.
const dciodvfyUnreadable = "Error - Dicom dataset read failed"

// dciodvfyErrors returns dciodvfy's error lines.
func dciodvfyErrors(t testing.TB, path string) map[string]bool {
	t.Helper()
	b, _ := exec.Command(tool(t, "dciodvfy"), path).CombinedOutput()
	out := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Error") {
			// UIDs change by design; compare the kind of error.
			out[uidPattern.ReplaceAllString(l, "UID")] = true
		}
	}
	return out
}

func newKeys(after, before map[string]bool) []string {
	var n []string
	for k := range after {
		if !before[k] {
			n = append(n, k)
		}
	}
	sort.Strings(n)
	return n
}

// forms is s in UTF-8 and GB18030.
func forms(s string) [][]byte {
	f := [][]byte{[]byte(s)}
	if g, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(s)); err == nil && !bytes.Equal(g, f[0]) {
		f = append(f, g)
	}
	return f
}

// assertAbsent fails if any form of any secret occurs in out.
func assertAbsent(t testing.TB, name string, out []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, f := range forms(s) {
			if bytes.Contains(out, f) {
				t.Errorf("%s: original value %q survives in the output", name, s)
			}
		}
	}
}
