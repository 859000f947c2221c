package fhirserver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"phix/internal/testenv"
)

// syntheaBundles returns the Synthea transaction Bundles of the shared test data.
func syntheaBundles(t testing.TB) map[string][]byte {
	t.Helper()
	dir := testenv.Shared(t, "testdata", "synthea")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		testenv.Missing(t, "no Synthea bundles in %s", dir)
	}
	sort.Strings(files)
	out := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = data
	}
	return out
}

// phiStrings collects values from the bundles that are PHI: names,
// identifiers, phone numbers, address lines and cities (from syntheaPHI).
func phiStrings(t testing.TB, bundles map[string][]byte) []string {
	t.Helper()
	var keep []string
	for _, data := range bundles {
		names, subs := syntheaPHI(t, data)
		for _, s := range append(names, subs...) {
			// Very short strings (e.g. a one-letter given name) match anything.
			if len(s) >= 4 {
				keep = append(keep, s)
			}
		}
	}
	if len(keep) < len(bundles) {
		t.Fatalf("only %d PHI strings collected", len(keep))
	}
	return keep
}

// TestSynthea imports every Synthea bundle as a transaction, searches it, and
// checks that no PHI reached the request log.
func TestSynthea(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		bundles := raceSubset(syntheaBundles(t))
		total := 0
		for name, data := range bundles {
			r := e.do("POST", "", data)
			if r.status != 200 {
				t.Fatalf("%s: status %d: %.1000s", name, r.status, r.body)
			}
			for i, en := range r.entries() {
				st := en["response"].(map[string]any)["status"].(string)
				if !strings.HasPrefix(st, "201") {
					t.Fatalf("%s entry %d: %s", name, i, st)
				}
			}
			total += len(r.entries())
		}
		if got := e.do("GET", "/Patient?_summary=count", nil).want(t, 200).total(); got != len(bundles) {
			t.Fatalf("%d patients, want %d", got, len(bundles))
		}
		all := e.do("GET", "/_history?_count=1", nil).want(t, 200).total()
		if all != total {
			t.Fatalf("stored %d versions, imported %d", all, total)
		}
		// Searches by PHI values, which must not reach the log either.
		phi := phiStrings(t, bundles)
		var family, given string
		for name, data := range bundles {
			_ = name
			var b struct {
				Entry []struct {
					Resource map[string]any `json:"resource"`
				} `json:"entry"`
			}
			_ = json.Unmarshal(data, &b)
			n := b.Entry[0].Resource["name"].([]any)[0].(map[string]any)
			family, given = n["family"].(string), n["given"].([]any)[0].(string)
			break
		}
		s := e.do("GET", "/Patient?family="+urlq(family)+"&given="+urlq(given)+"&_revinclude=Observation:subject&_count=5", nil).want(t, 200)
		if s.total() < 1 {
			t.Fatalf("search by name found nothing")
		}
		pid := s.entries()[0]["resource"].(map[string]any)["id"].(string)
		obs := e.do("GET", "/Observation?subject=Patient/"+pid+"&_count=1", nil).want(t, 200)
		if obs.total() < 1 {
			t.Fatalf("no observations for the patient")
		}
		e.do("GET", "/Encounter?patient="+pid+"&date=ge2000&_sort=-date", nil).want(t, 200)
		e.do("GET", "/Condition?patient="+pid+"&_include=Condition:encounter", nil).want(t, 200)
		e.do("POST", "/Patient/_search", "family="+urlq(family), "Content-Type", "application/x-www-form-urlencoded").want(t, 200)
		e.do("GET", "/Patient/"+pid, nil).want(t, 200)
		logs := e.logs.String()
		if !strings.Contains(logs, `"route"`) || strings.Count(logs, "\n") < len(bundles) {
			t.Fatalf("request log missing: %.300s", logs)
		}
		for _, v := range phi {
			if strings.Contains(logs, v) {
				t.Fatalf("PHI (a Synthea %d-byte value) found in the request log", len(v))
			}
		}
		if strings.Contains(logs, "family=") || strings.Contains(logs, "?") {
			t.Fatal("a query string reached the request log")
		}
	})
}
