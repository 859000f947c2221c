package fhirpath

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"phix/internal/testenv"
)

// conformanceFloor is the pass rate (over tests that are not skipped) that
// the official R4 suite must reach. It is a ratchet: raise it when the
// engine improves, never lower it.
const conformanceFloor = 0.99

// conformancePassedFloor is the number of tests that must pass, a ratchet
// like conformanceFloor: the rate alone would let passes turn into skips.
const conformancePassedFloor = 906

type xmlSuite struct {
	Groups []xmlGroup `xml:"group"`
}

type xmlGroup struct {
	Name  string    `xml:"name,attr"`
	Tests []xmlTest `xml:"test"`
}

type xmlTest struct {
	Name       string `xml:"name,attr"`
	InputFile  string `xml:"inputfile,attr"`
	Predicate  string `xml:"predicate,attr"`
	Mode       string `xml:"mode,attr"`
	Ordered    string `xml:"ordered,attr"`
	Expression struct {
		Text    string `xml:",chardata"`
		Invalid string `xml:"invalid,attr"`
		Mode    string `xml:"mode,attr"`
	} `xml:"expression"`
	Outputs []struct {
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	} `xml:"output"`
}

type caseResult struct {
	group, name string
	status      string // pass, fail, skip
	reason      string
}

func loadJSON(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// fixedClock makes now()/today() deterministic.
func fixedClock() time.Time {
	return time.Date(2026, 1, 15, 10, 20, 30, 123e6, time.FixedZone("", 8*3600))
}

func runConformance(t *testing.T) []caseResult {
	dir := testenv.Shared(t, "testdata", "fhir-test-cases")
	data, err := os.ReadFile(filepath.Join(dir, "fhirpath", "tests-fhir-r4.xml"))
	if err != nil {
		t.Fatalf("read suite: %v", err)
	}
	var suite xmlSuite
	if err := xml.Unmarshal(data, &suite); err != nil {
		t.Fatalf("parse suite: %v", err)
	}
	inputs := map[string]map[string]any{}
	inputErr := map[string]string{}
	load := func(name string) (map[string]any, string) {
		if m, ok := inputs[name]; ok {
			return m, ""
		}
		if r, ok := inputErr[name]; ok {
			return nil, r
		}
		jsonName := strings.TrimSuffix(name, ".xml") + ".json"
		m, err := loadJSON(filepath.Join(dir, "examples", jsonName))
		if err != nil {
			reason := "input " + name + " is not in testdata (no JSON twin)"
			if strings.HasSuffix(name, ".xml") {
				reason = "input " + name + " exists only as XML (no JSON twin in testdata)"
			}
			inputErr[name] = reason
			return nil, reason
		}
		inputs[name] = m
		return m, ""
	}
	var results []caseResult
	for _, g := range suite.Groups {
		for _, tc := range g.Tests {
			res := caseResult{group: g.Name, name: tc.Name}
			var input Collection
			if tc.InputFile != "" {
				m, reason := load(tc.InputFile)
				if m == nil {
					res.status, res.reason = "skip", reason
					results = append(results, res)
					continue
				}
				input = Collection{NewResourceItem(m)}
			}
			res.status, res.reason = runCase(tc, input)
			results = append(results, res)
		}
	}
	return results
}

func runCase(tc xmlTest, input Collection) (status, reason string) {
	defer func() {
		if r := recover(); r != nil {
			status, reason = "fail", fmt.Sprintf("panic: %v", r)
		}
	}()
	strict := tc.Mode == "strict" || tc.Expression.Mode == "strict"
	ec := &EvalContext{Now: fixedClock, Strict: strict, Limits: Limits{MaxSteps: 200000}}
	expr, err := Compile(tc.Expression.Text)
	var out Collection
	if err == nil {
		out, err = expr.Evaluate(ec, input)
	}
	if inv := tc.Expression.Invalid; inv != "" {
		if err == nil {
			return "fail", "expected a " + inv + " error, got a result"
		}
		fe, ok := AsError(err)
		if !ok {
			return "fail", "error is not *Error"
		}
		if inv == "syntax" && fe.Kind != KindSyntax {
			return "fail", "expected a syntax error, got " + fe.Kind.String()
		}
		return "pass", ""
	}
	if err != nil {
		return "fail", "unexpected error: " + err.Error()
	}
	if tc.Predicate == "true" {
		out = boolColl(len(out) > 0)
	}
	if len(out) != len(tc.Outputs) {
		return "fail", fmt.Sprintf("expected %d items, got %d (%s)", len(tc.Outputs), len(out), renderAll(out))
	}
	got := make([]string, len(out))
	want := make([]string, len(out))
	for i, it := range out {
		exp := tc.Outputs[i]
		if exp.Type != "" {
			if tn := testTypeName(it); !strings.EqualFold(tn, exp.Type) {
				if tc.Ordered != "false" {
					return "fail", fmt.Sprintf("item %d: expected type %s, got %s", i, exp.Type, tn)
				}
			}
		}
		got[i] = render(it, exp.Type)
		want[i] = normalizeExpected(exp.Text, exp.Type)
	}
	if tc.Ordered == "false" {
		sort.Strings(got)
		sort.Strings(want)
	}
	for i := range got {
		if got[i] != want[i] {
			return "fail", fmt.Sprintf("item %d: expected %q, got %q", i, want[i], got[i])
		}
	}
	return "pass", ""
}

func testTypeName(it Item) string {
	if it.typ != "" {
		return it.typ
	}
	switch v := it.v.(type) {
	case bool:
		return "boolean"
	case string:
		return "string"
	case int64:
		return "integer"
	case Decimal:
		return "decimal"
	case Quantity:
		return "Quantity"
	case DateTime:
		switch v.kind {
		case kindDate:
			return "date"
		case kindTime:
			return "time"
		}
		return "dateTime"
	}
	return "?"
}

func render(it Item, typ string) string {
	v, ok := it.sys()
	if !ok {
		return fmt.Sprintf("<%s>", it.Type())
	}
	switch x := v.(type) {
	case DateTime:
		return x.literal()
	case Decimal:
		if typ == "decimal" {
			return x.trim(0).String()
		}
		return x.String()
	}
	s, _ := sysToString(v)
	return s
}

func normalizeExpected(text, typ string) string {
	if typ == "decimal" {
		if d, err := parseDecimal(text); err == nil {
			return d.trim(0).String()
		}
	}
	return text
}

func renderAll(c Collection) string {
	var parts []string
	for _, it := range c {
		parts = append(parts, render(it, ""))
	}
	return strings.Join(parts, ", ")
}

func TestConformanceR4(t *testing.T) {
	results := runConformance(t)
	var pass, fail, skip int
	skipReasons := map[string]int{}
	for _, r := range results {
		switch r.status {
		case "pass":
			pass++
		case "fail":
			fail++
			t.Logf("FAIL %s/%s: %s", r.group, r.name, r.reason)
		case "skip":
			skip++
			skipReasons[r.reason]++
		}
	}
	for reason, n := range skipReasons {
		t.Logf("SKIP %d: %s", n, reason)
	}
	rate := float64(pass) / float64(pass+fail)
	testenv.ReportConformance(t, fmt.Sprintf("fhirpath conformance: passed=%d failed=%d skipped=%d; pass rate %.4f (floors: rate %.2f, passed %d)",
		pass, fail, skip, rate, conformanceFloor, conformancePassedFloor))
	if rate < conformanceFloor {
		t.Errorf("pass rate %.4f below the floor %.2f", rate, conformanceFloor)
	}
	if pass < conformancePassedFloor {
		t.Errorf("%d tests passed, below the floor %d", pass, conformancePassedFloor)
	}
}
