package search_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"phix/fhir"
	"phix/internal/testenv"
)

// decode turns JSON into a fhir.Resource the way the resource model does:
// numbers as json.Number.
func decode(t testing.TB, data []byte) *fhir.Resource {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return resourceOf(m)
}

func resourceOf(m map[string]any) *fhir.Resource {
	typ, _ := m["resourceType"].(string)
	id, _ := m["id"].(string)
	return &fhir.Resource{Type: typ, ID: id, Object: m}
}

func example(t testing.TB, name string) *fhir.Resource {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, "testdata", "fhir-test-cases", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, b)
}

// syntheaResources returns every resource of every Synthea bundle.
func syntheaResources(t testing.TB) []*fhir.Resource {
	t.Helper()
	dir := testenv.Shared(t, "testdata", "synthea")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no synthea bundles in %s", dir)
	}
	var out []*fhir.Resource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bundle := decode(t, b)
		entries, _ := bundle.Object["entry"].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			if r, ok := em["resource"].(map[string]any); ok {
				out = append(out, resourceOf(r))
			}
		}
	}
	return out
}

func nowNanos() int64 { return time.Now().UnixNano() }

func mustQueryB(b *testing.B, raw string) url.Values {
	v, err := url.ParseQuery(raw)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
