package invariant

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/fhir"
	"phix/internal/testenv"
)

// exampleFiles returns the published R4 examples.
func exampleFiles(t testing.TB) []string { return testenv.ExampleFiles(t) }

// syntheaResources returns every Bundle.entry.resource of the Synthea
// bundles as parsed resources.
func syntheaResources(t testing.TB) []*fhir.Resource {
	var out []*fhir.Resource
	for _, raw := range testenv.SyntheaResources(t) {
		r, err := fhir.Parse(raw, fhir.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func parseFile(t testing.TB, f string) *fhir.Resource {
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	r, err := fhir.Parse(data, fhir.ParseOptions{})
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(f), err)
	}
	return r
}

func issuesText(is []fhir.Issue) string {
	var b strings.Builder
	for _, i := range is {
		b.WriteString("\n  " + i.Severity + " " + i.Code + " " + strings.Join(i.Expression, ",") + ": " + i.Diagnostics)
	}
	return b.String()
}

func errorsOf(is []fhir.Issue) []fhir.Issue {
	var out []fhir.Issue
	for _, i := range is {
		if i.Severity == fhir.SeverityError || i.Severity == fhir.SeverityFatal {
			out = append(out, i)
		}
	}
	return out
}

// knownViolations lists published examples that break an invariant, with
// the exact key, location and count.
var knownViolations = map[string][]fhir.Issue{
	// Its concepts list the code "chol-mass" twice (the mmol/L and the
	// mg/L variant); csd-1 requires unique codes in a code system.
	"codesystem-example.json": {{Severity: fhir.SeverityError, Key: "csd-1", Expression: []string{"CodeSystem"}}},
}

// notEvaluated counts the "invariant not evaluated" warnings by key.
func notEvaluated(is []fhir.Issue, into map[string]int) {
	for _, i := range is {
		if strings.Contains(i.Diagnostics, DiagNotEvaluated) {
			into[i.Key]++
		}
	}
}

func TestExamples(t *testing.T) {
	skipped := map[string]int{}
	for _, f := range exampleFiles(t) {
		name := filepath.Base(f)
		r := parseFile(t, f)
		is := Check(context.Background(), r, Options{})
		notEvaluated(is, skipped)
		got := errorsOf(is)
		want := knownViolations[name]
		if len(got) != len(want) {
			t.Errorf("%s: %d errors, want %d:%s", name, len(got), len(want), issuesText(got))
			continue
		}
		for i := range got {
			if got[i].Key != want[i].Key || got[i].Expression[0] != want[i].Expression[0] || got[i].Code != IssueInvariant {
				t.Errorf("%s: got%s", name, issuesText(got[i:i+1]))
			}
		}
	}
	// Every constraint met in the examples evaluates.
	if len(skipped) > 0 {
		t.Errorf("not evaluated: %v", skipped)
	}
}

func TestSynthea(t *testing.T) {
	res := syntheaResources(t)
	if len(res) < 1000 {
		t.Fatalf("only %d Synthea resources", len(res))
	}
	skipped := map[string]int{}
	failed := 0
	for i, r := range res {
		is := Check(context.Background(), r, Options{})
		notEvaluated(is, skipped)
		if e := errorsOf(is); len(e) > 0 {
			failed++
			if failed <= 10 {
				t.Errorf("%s resource %d:%s", r.Type, i, issuesText(e))
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d Synthea resources violate invariants", failed, len(res))
	}
	if len(skipped) > 0 {
		t.Errorf("not evaluated: %v", skipped)
	}
}
