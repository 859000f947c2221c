package fhirpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/internal/testenv"
)

// TestR4SearchParameterExpressions compiles every expression of the R4
// search parameter definitions and evaluates each, in lenient and strict
// mode, over the example resources of its base types: official
// expressions must neither fail to compile nor raise errors.
func TestR4SearchParameterExpressions(t *testing.T) {
	dir := testenv.Shared(t, "fhir-r4")
	bundle, err := loadJSON(filepath.Join(dir, "search-parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	exdir := testenv.Shared(t, "testdata", "fhir-test-cases", "examples")
	files, _ := os.ReadDir(exdir)
	byType := map[string][]map[string]any{}
	for _, f := range files {
		m, err := loadJSON(filepath.Join(exdir, f.Name()))
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		rt, _ := m["resourceType"].(string)
		byType[rt] = append(byType[rt], m)
	}
	entries, _ := bundle["entry"].([]any)
	compiled, evaluated, nonEmpty := 0, 0, 0
	for _, e := range entries {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		src, _ := res["expression"].(string)
		if src == "" {
			continue
		}
		expr, err := Compile(src)
		if err != nil {
			t.Errorf("search parameter %v: compile: %v", res["id"], err)
			continue
		}
		compiled++
		bases, _ := res["base"].([]any)
		for _, b := range bases {
			for _, r := range byType[b.(string)] {
				for _, strict := range []bool{false, true} {
					ec := &EvalContext{Strict: strict, Now: fixedClock}
					out, err := expr.EvaluateResource(ec, r)
					if err != nil {
						t.Errorf("search parameter %v on %s (strict=%v): %v", res["id"], b, strict, err)
						continue
					}
					evaluated++
					if len(out) > 0 && !strict {
						nonEmpty++
					}
				}
			}
		}
	}
	t.Logf("compiled %d expressions, %d evaluations, %d non-empty (lenient)", compiled, evaluated, nonEmpty)
	if compiled < 1000 {
		t.Errorf("only %d expressions compiled", compiled)
	}
	_ = strings.TrimSpace
}
