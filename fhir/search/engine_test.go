package search_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"phix/fhir"
	"phix/fhir/fhirpath"
	"phix/fhir/search"
	"phix/internal/testenv"
)

// TestEngineCompilesEveryExpression: the FHIRPath engine compiles the
// expression of every R4 parameter and of every composite component.
func TestEngineCompilesEveryExpression(t *testing.T) {
	n, none := 0, 0
	for _, p := range search.AllParams() {
		if p.Expression == "" {
			none++
			continue
		}
		if _, err := fhirpath.Compile(p.Expression); err != nil {
			t.Errorf("%s: %v", p.URL, err)
		}
		for _, c := range p.Components {
			if _, err := fhirpath.Compile(c.Expression); err != nil {
				t.Errorf("%s component %s: %v", p.URL, c.Definition, err)
			}
		}
		n++
	}
	// _text, _content and _query have no expression.
	if n != 1375 || none != 3 {
		t.Errorf("%d expressions compiled, %d without, want 1375 and 3", n, none)
	}
	t.Logf("%d of %d parameter expressions compile", n, n+none)
}

// entryKeys renders entries as a sorted set of comparable strings. Sets, not
// lists: FHIRPath's union removes duplicates ("Observation.code |
// Observation.component.code" of equal concepts), the fast path writes them,
// and a duplicate index entry never changes a match. Composite entries are
// compared by group contents (one key per distinct group), since the group
// numbers are only labels.
func entryKeys(es []search.Entry) []string {
	groups := map[int][]string{}
	var out []string
	for _, e := range es {
		lo, hi := "", ""
		if !e.Lo.IsZero() {
			lo = e.Lo.UTC().Format("2006-01-02T15:04:05.999999999")
		}
		if !e.Hi.IsZero() {
			hi = e.Hi.UTC().Format("2006-01-02T15:04:05.999999999")
		}
		k := fmt.Sprintf("%s|%s|%q|%q|%q|%q|%s|%s|%g|%g|%g|%q|%q|%q|%q|%q|%q",
			e.Param, e.Type, e.Str, e.Exact, e.System, e.Code, lo, hi, e.Num, e.NumLo, e.NumHi,
			e.RefType, e.RefID, e.RefVersion, e.URL, e.TypeSystem, e.TypeCode)
		if e.Group > 0 {
			groups[e.Group] = append(groups[e.Group], k)
			continue
		}
		out = append(out, k)
	}
	for _, g := range groups {
		slices.Sort(g)
		out = append(out, "group{"+strings.Join(slices.Compact(g), " ; ")+"}")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// corpus is every R4 example and every Synthea resource.
func corpus(t testing.TB) []*fhir.Resource {
	dir := testenv.Shared(t, "testdata", "fhir-test-cases", "examples")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		testenv.Missing(t, "no examples in %s", dir)
	}
	var rs []*fhir.Resource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := decode(t, b)
		rs = append(rs, r)
		// Bundles carry resources of many types: index those too.
		if entries, ok := r.Object["entry"].([]any); ok {
			for _, e := range entries {
				em, _ := e.(map[string]any)
				if m, ok := em["resource"].(map[string]any); ok {
					rs = append(rs, resourceOf(m))
				}
			}
		}
	}
	return append(rs, syntheaResources(t)...)
}

// TestExtractMatchesEngine is the proof that the fast path is the FHIRPath
// semantics: for every resource of the R4 examples and Synthea and every
// indexed parameter of its type, the fast extractor's entries equal those of
// evaluating the parameter's expression with the engine.
func TestExtractMatchesEngine(t *testing.T) {
	rs := corpus(t)
	if testing.Short() && len(rs) > 2000 {
		rs = rs[:2000]
	}
	type diff struct {
		n       int
		example string
	}
	diffs := map[string]*diff{}
	checked, withValues := map[string]bool{}, map[string]bool{}
	pairs := 0
	for _, r := range rs {
		for _, p := range search.Params(r.Type) {
			if !search.Indexed(p) || search.IsFullText(p) {
				continue
			}
			checked[p.URL] = true
			fast := entryKeys(search.ExtractParam(r, p))
			eng, err := search.ExtractParamFHIRPath(r, p)
			if err != nil {
				t.Errorf("%s on %s/%s: %v", p.URL, r.Type, r.ID, err)
				continue
			}
			pairs++
			ek := entryKeys(eng)
			if len(ek) > 0 {
				withValues[p.URL] = true
			}
			if !slices.Equal(fast, ek) && !precisionOnly(fast, ek) {
				d := diffs[p.URL]
				if d == nil {
					d = &diff{example: fmt.Sprintf("%s/%s:\n fast   %s\n engine %s", r.Type, r.ID, strings.Join(fast, "\n        "), strings.Join(ek, "\n        "))}
					diffs[p.URL] = d
				}
				d.n++
			}
		}
	}
	urls := make([]string, 0, len(diffs))
	for u := range diffs {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		t.Errorf("%s: %d resources differ; first %s", u, diffs[u].n, diffs[u].example)
	}
	t.Logf("%d resources, %d (resource, parameter) pairs, %d parameters checked, %d with values in the corpus, %d differ",
		len(rs), pairs, len(checked), len(withValues), len(diffs))
}

// precisionOnly reports whether fast and engine differ only by numbers that
// are equal but written with different precision (1.0 g and 1.00 g): FHIRPath
// equality ignores trailing zeros, so a union ("value as Quantity | value as
// SampledData") keeps one of them, while search keeps each value's own
// precision range, as FHIR's implicit precision asks. Every engine key must
// be in fast, and every extra fast key must equal an engine key once the
// precision bounds are dropped.
func precisionOnly(fast, eng []string) bool {
	var strip func(k string) string
	strip = func(k string) string {
		if inner, ok := strings.CutPrefix(k, "group{"); ok {
			parts := strings.Split(strings.TrimSuffix(inner, "}"), " ; ")
			for i := range parts {
				parts[i] = strip(parts[i])
			}
			return "group{" + strings.Join(parts, " ; ") + "}"
		}
		// Fields: ...|num|lo|hi|... are fields 8, 9, 10 (0-based); drop 9, 10.
		f := strings.Split(k, "|")
		if len(f) < 11 {
			return k
		}
		return strings.Join(append(append([]string{}, f[:9]...), f[11:]...), "|")
	}
	base := map[string]bool{}
	for _, k := range eng {
		if !slices.Contains(fast, k) {
			return false
		}
		base[strip(k)] = true
	}
	for _, k := range fast {
		if !slices.Contains(eng, k) && !base[strip(k)] {
			return false
		}
	}
	return true
}
