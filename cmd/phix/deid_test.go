package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/fhir"
	"phix/internal/testenv"
)

func deidKeyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret.hex")
	if err := os.WriteFile(p, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// syntheaInput returns one Synthea bundle and the names of its Patient.
func syntheaInput(t *testing.T) ([]byte, *fhir.Resource, []string) {
	t.Helper()
	dir := testenv.Shared(t, "testdata", "synthea")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatal("no synthea bundles")
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := fhir.Parse(data, fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range b.Object["entry"].([]any) {
		res := en.(map[string]any)["resource"].(map[string]any)
		if res["resourceType"] != "Patient" {
			continue
		}
		for _, n := range res["name"].([]any) {
			nm := n.(map[string]any)
			if f, ok := nm["family"].(string); ok {
				names = append(names, f)
			}
			for _, g := range nm["given"].([]any) {
				names = append(names, g.(string))
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no patient names in the bundle")
	}
	return data, b, names
}

func checkDeidOutput(t *testing.T, out []byte, names []string, wantLines int) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		n++
		r, err := fhir.Parse(line, fhir.ParseOptions{})
		if err != nil {
			t.Fatalf("output line %d does not parse: %v", n, err)
		}
		if issues := fhir.Validate(r); len(issues) > 0 {
			t.Errorf("output line %d invalid: %s %s", n, issues[0].Code, issues[0].Diagnostics)
		}
	}
	if n != wantLines {
		t.Errorf("%d output resources, want %d", n, wantLines)
	}
	for _, name := range names {
		if len(name) >= 3 && bytes.Contains(out, []byte(name)) {
			t.Errorf("output still holds an input name (len %d)", len(name))
		}
	}
}

func TestDeidSyntheaBundleFiles(t *testing.T) {
	data, _, names := syntheaInput(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := deidCmd(context.Background(), []string{"--profile", "safe-harbor", "--key-file", deidKeyFile(t), in, out}, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkDeidOutput(t, got, names, 1)
}

func TestDeidNDJSONStdio(t *testing.T) {
	_, b, names := syntheaInput(t)
	var in bytes.Buffer
	entries := b.Object["entry"].([]any)
	for _, en := range entries {
		line, err := fhir.Marshal(&fhir.Resource{Object: en.(map[string]any)["resource"].(map[string]any)})
		if err != nil {
			t.Fatal(err)
		}
		in.Write(line)
		in.WriteByte('\n')
	}
	var out bytes.Buffer
	if err := deidCmd(context.Background(), []string{"--profile", "safe-harbor", "--key-file", deidKeyFile(t), "-", "-"}, &in, &out); err != nil {
		t.Fatal(err)
	}
	checkDeidOutput(t, out.Bytes(), names, len(entries))
}

func TestDeidCLIErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("too short"), 0o600)
	badProfile := filepath.Join(dir, "bad.json")
	os.WriteFile(badProfile, []byte(`{"name":"x","rules":[{"path":"Patient.name.(","method":"redact"}]}`), 0o600)
	in := filepath.Join(dir, "in.ndjson")
	os.WriteFile(in, []byte(`{"resourceType":"Patient","id":"p","name":[{"family":"Quimby"}]}`+"\n"), 0o600)
	out := filepath.Join(dir, "out.ndjson")
	key := deidKeyFile(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing profile file", []string{"--profile", filepath.Join(dir, "nope.json"), "--key-file", key, in, out}, "DEID-RULE-INVALID"},
		{"bad profile", []string{"--profile", badProfile, "--key-file", key, in, out}, "DEID-RULE-INVALID"},
		{"missing key file", []string{"--key-file", filepath.Join(dir, "nokey"), in, out}, "cannot read the key file"},
		{"short key file", []string{"--key-file", short, in, out}, "at least 32 bytes"},
		{"bad key in the environment", []string{in, out}, "PHIX_DEID_KEY"},
		{"bad suite", []string{"--suite", "xx", "--key-file", key, in, out}, ""},
		{"usage", []string{"--key-file", key, in}, "usage"},
	}
	t.Setenv("PHIX_DEID_KEY", "not-hex")
	for _, c := range cases {
		err := deidCmd(context.Background(), c.args, strings.NewReader(""), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		if _, statErr := os.Stat(out); statErr == nil {
			t.Errorf("%s: output written on error", c.name)
		}
	}
	// A resource that fails keeps the whole output back.
	os.WriteFile(in, []byte(`{"resourceType":"Patient","id":"p"}`+"\n"+`{"resourceType":"NotAType"}`+"\n"), 0o600)
	if err := deidCmd(context.Background(), []string{"--key-file", key, in, out}, nil, nil); err == nil {
		t.Error("bad resource accepted")
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("partial output written")
	}
}

// Without --key-file or PHIX_DEID_KEY the command still de-identifies, with a
// one-time key: the issue's plain `phix deid --profile P IN OUT` works.
func TestDeidOneTimeKey(t *testing.T) {
	t.Setenv("PHIX_DEID_KEY", "")
	in := `{"resourceType":"Patient","id":"p","name":[{"family":"Quimby","given":["Ada"]}],"birthDate":"1970-03-04"}` + "\n"
	var out bytes.Buffer
	if err := deidCmd(context.Background(), []string{"--profile", "safe-harbor", "-", "-"}, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	if out.Len() == 0 || strings.Contains(out.String(), "Quimby") || strings.Contains(out.String(), "1970-03-04") {
		t.Fatalf("one-time-key output: %q", out.String())
	}
}
