package dicom

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"phix/internal/testenv"
)

// pydicomData is where Debian's python3-pydicom keeps its test files.
const pydicomData = "/usr/lib/python3/dist-packages/pydicom/data"

func pydicomFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, sub := range []string{"test_files", "charset_files"} {
		m, _ := filepath.Glob(filepath.Join(pydicomData, sub, "*.dcm"))
		files = append(files, m...)
	}
	if len(files) == 0 {
		testenv.Missing(t, "pydicom test files not installed (Debian package python3-pydicom)")
	}
	return files
}

type original struct {
	Path   string `json:"path"`
	Error  string `json:"error"`
	Values []struct {
		Tag  string `json:"tag"`
		Text string `json:"text"`
		Raw  string `json:"raw"`
	} `json:"values"`
}

// TestPydicomCorpus de-identifies every pydicom test file. Files that
// succeed must read cleanly under dcmdump and add no dciodvfy errors, and
// no identifying value pydicom read from the input (decoded or raw) may
// remain in the output. Files that fail must fail with PHI-6008.
func TestPydicomCorpus(t *testing.T) {
	files := pydicomFiles(t)
	py := "/usr/bin/python3" // Debian's, where python3-pydicom installs
	if _, err := os.Stat(py); err != nil {
		py = tool(t, "python3")
	}
	b, err := exec.Command(py, append([]string{"testdata/originals.py"}, files...)...).Output()
	if err != nil {
		t.Fatalf("originals.py: %v", err)
	}
	origs := map[string]original{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var o original
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatal(err)
		}
		origs[o.Path] = o
	}
	d := newTestDeid(t, "basic")
	dir := t.TempDir()
	var done, failedN int
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f)
		res, err := d.Deidentify(raw)
		if err != nil {
			de, ok := err.(*Error)
			if !ok || de.Code != CodeDeidFailed {
				t.Errorf("%s: error %v is not PHI-6008", name, err)
			}
			failedN++
			continue
		}
		done++
		out := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
		if err := os.WriteFile(out, res.Data, 0o600); err != nil {
			t.Fatal(err)
		}
		if p := newKeys(dcmdumpProblems(t, out), dcmdumpProblems(t, f)); len(p) > 0 {
			t.Errorf("%s: dcmdump problems added: %q", name, p)
		}
		if before := dciodvfyErrors(t, f); before[dciodvfyUnreadable] {
			t.Logf("%s: dciodvfy cannot read the input; output errors: %q", name, newKeys(dciodvfyErrors(t, out), nil))
		} else if p := newKeys(dciodvfyErrors(t, out), before); len(p) > 0 {
			t.Errorf("%s: dciodvfy errors added: %q", name, p)
		}
		manufacturer, _ := find(parsed(t, res.Data), 0x00080070)
		for _, v := range origs[f].Values {
			if len(manufacturer) > 0 && strings.Contains(manufacturer[0], v.Text) {
				continue // a kept Manufacturer equal to the removed institution name
			}
			if v.Text != "" && len(v.Text) >= 4 && !strings.HasPrefix(v.Text, "1.2.840.10008.") {
				assertAbsent(t, name+" "+v.Tag, res.Data, v.Text)
			}
			if rb, _ := hex.DecodeString(v.Raw); len(bytes.TrimSpace(rb)) >= 4 && !bytes.HasPrefix(rb, []byte("1.2.840.10008.")) {
				if bytes.Contains(res.Data, bytes.TrimRight(rb, " \x00")) {
					t.Errorf("%s %s: raw original bytes survive", name, v.Tag)
				}
			}
		}
	}
	t.Logf("%d de-identified, %d refused with PHI-6008", done, failedN)
	if done < len(files)*3/4 {
		t.Errorf("only %d of %d files de-identified", done, len(files))
	}
}
