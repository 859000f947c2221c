package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// Bundle is one Synthea patient bundle as read from the shared testdata.
type Bundle struct {
	Name string // file base name, for messages
	Data []byte // the file's bytes; shared by every caller, do not modify
}

// synthea caches the bundles: they are tens of megabytes and several tests
// in one process read them.
var synthea struct {
	sync.Mutex
	dir     string
	bundles []Bundle
}

// SyntheaBundles returns the Synthea bundles of testdata/synthea sorted by
// file name, read once per process. It skips (fails under CI) when the
// directory or the bundles are missing.
func SyntheaBundles(t testing.TB) []Bundle {
	t.Helper()
	dir := Shared(t, "testdata", "synthea")
	synthea.Lock()
	defer synthea.Unlock()
	if synthea.bundles != nil && synthea.dir == dir {
		return synthea.bundles
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		Missing(t, "no Synthea bundles in %s", dir)
	}
	sort.Strings(files)
	out := make([]Bundle, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Bundle{Name: filepath.Base(f), Data: data})
	}
	synthea.dir, synthea.bundles = dir, out
	return out
}

// Entries returns the bundle's Bundle.entry.resource values as they stand in
// the file.
func (b Bundle) Entries(t testing.TB) []json.RawMessage {
	t.Helper()
	var doc struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b.Data, &doc); err != nil {
		t.Fatalf("%s: %v", b.Name, err)
	}
	out := make([]json.RawMessage, len(doc.Entry))
	for i, e := range doc.Entry {
		out[i] = e.Resource
	}
	return out
}

// SyntheaResources returns every Bundle.entry.resource of every Synthea
// bundle, in file and entry order.
func SyntheaResources(t testing.TB) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, b := range SyntheaBundles(t) {
		out = append(out, b.Entries(t)...)
	}
	return out
}

// ExampleFiles returns the paths of the published FHIR R4 JSON examples
// (testdata/fhir-test-cases/examples), sorted.
func ExampleFiles(t testing.TB) []string {
	t.Helper()
	dir := Shared(t, "testdata", "fhir-test-cases", "examples")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		Missing(t, "no examples in %s", dir)
	}
	sort.Strings(files)
	return files
}
