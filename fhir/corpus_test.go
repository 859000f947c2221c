package fhir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/internal/testenv"
)

// exampleFiles returns the published FHIR examples.
func exampleFiles(t testing.TB) []string { return testenv.ExampleFiles(t) }

// syntheaResources returns every Bundle.entry.resource of the Synthea
// bundles, each re-encoded on its own.
func syntheaResources(t testing.TB) [][]byte {
	var out [][]byte
	for _, raw := range testenv.SyntheaResources(t) {
		r, err := Parse(raw, ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		enc, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, enc)
	}
	return out
}

func issuesText(is []Issue) string {
	var b strings.Builder
	for _, i := range is {
		b.WriteString("\n  " + i.Severity + " " + i.Code + " " + strings.Join(i.Expression, ",") + ": " + i.Diagnostics)
	}
	return b.String()
}

// knownInvalid lists published examples that break the R4 specification
// itself, with the exact issue they raise and how often.
var knownInvalid = map[string]struct {
	code, diag string
	count      int
}{
	// Its "display" items carry no linkId, but Questionnaire.item.linkId is
	// 1..1 in R4 (the example predates that rule being enforced by the
	// publisher): 50 items, every one reported.
	"bundle-questionnaire.json": {IssueRequired, "missing required element Questionnaire.item.linkId", 50},
}

func TestValidateExamples(t *testing.T) {
	for _, f := range exampleFiles(t) {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(data, ParseOptions{})
		if err != nil {
			t.Errorf("%s: parse: %v", name, err)
			continue
		}
		is := Validate(r)
		want, known := knownInvalid[name]
		if !known {
			if len(is) > 0 {
				t.Errorf("%s: issues%s", name, issuesText(is))
			}
			continue
		}
		if len(is) != want.count {
			t.Errorf("%s: %d issues, want %d", name, len(is), want.count)
		}
		for _, i := range is {
			if i.Code != want.code || i.Diagnostics != want.diag {
				t.Errorf("%s: unexpected issue%s", name, issuesText([]Issue{i}))
			}
		}
	}
}

func TestValidateSynthea(t *testing.T) {
	res := syntheaResources(t)
	if len(res) < 1000 {
		t.Fatalf("only %d Synthea resources", len(res))
	}
	failed := 0
	for i, data := range res {
		r, err := Parse(data, ParseOptions{})
		if err != nil {
			t.Fatalf("resource %d: %v", i, err)
		}
		if is := Validate(r); len(is) > 0 {
			failed++
			if failed <= 20 {
				t.Errorf("%s resource %d: %s", r.Type, i, issuesText(is))
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d Synthea resources invalid", failed, len(res))
	}
}
