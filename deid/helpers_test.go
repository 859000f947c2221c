package deid

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"phix/fhir"
	"phix/internal/testenv"
	"phix/suite"
)

func testKeys(t testing.TB, id suite.ID, seed byte) Keys {
	t.Helper()
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = seed + byte(i)
	}
	k, err := DeriveKeys(id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func fixedNow() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

func engine(t testing.TB, profile string, keys Keys) *Engine {
	t.Helper()
	p, err := LoadProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(p, keys, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func syntheaBundles(t testing.TB) map[string]*fhir.Resource {
	t.Helper()
	dir := testenv.Shared(t, "testdata", "synthea")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatal("no synthea bundles")
	}
	sort.Strings(files)
	out := map[string]*fhir.Resource{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := fhir.Parse(data, fhir.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = r
	}
	return out
}

func mustParse(t testing.TB, s string) *fhir.Resource {
	t.Helper()
	r, err := fhir.Parse([]byte(s), fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type jsonNumber = json.Number

func jsonText(r *fhir.Resource) (string, error) {
	b, err := fhir.Marshal(r)
	return string(b), err
}
