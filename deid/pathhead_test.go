package deid

import (
	"strings"
	"testing"

	"phix/fhir/fhirpath"
)

func TestPathHead(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"text.div", "text"},
		{"text", "text"},
		{"value.unit", "value"},
		{"name1.given", "name1"},
		{"Patient.birthDate", ""},
		{"extension.where(url='x')", ""},
		{"text.div | note.text", ""},
		{"true", ""},
		{"false.x", ""},
		{"%resource.text", ""},
		{"`text`.div", ""},
		{"text..div", ""},
		{"", ""},
		{".text", ""},
		{"1text", ""},
	} {
		if got := pathHead(tc.expr); got != tc.want {
			t.Errorf("pathHead(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// TestPathHeadNeverHidesASelection evaluates member chains on every
// Synthea resource (and hand-made choice and "_" cases): wherever the
// prefilter would skip, the evaluation must be empty.
func TestPathHeadNeverHidesASelection(t *testing.T) {
	objs := []map[string]any{
		{"resourceType": "Observation", "valueQuantity": map[string]any{"value": 1, "unit": "mg"}},
		{"resourceType": "Patient", "_birthDate": map[string]any{"extension": []any{map[string]any{"url": "u", "valueCode": "masked"}}}},
		{"resourceType": "Patient"},
	}
	for _, bu := range syntheaBundles(t) {
		for _, en := range arr(bu.Object["entry"]) {
			objs = append(objs, en.(map[string]any)["resource"].(map[string]any))
		}
	}
	exprs := []string{"text.div", "text", "value", "value.unit", "birthDate", "name.given", "note.text", "code.text", "identifier.value", "deceased"}
	ec := &fhirpath.EvalContext{}
	skipped := 0
	for _, src := range exprs {
		head := pathHead(src)
		if head == "" {
			t.Fatalf("pathHead(%q) is empty", src)
		}
		expr, err := fhirpath.Cached(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if mayHave(o, head) {
				continue
			}
			skipped++
			res, err := expr.EvaluateResource(ec, o)
			if err != nil || len(res) != 0 {
				t.Fatalf("%s on a %v: prefilter skips but evaluation gives %d items (err %v)", src, o["resourceType"], len(res), err)
			}
		}
	}
	if skipped == 0 {
		t.Fatal("prefilter never skipped: the test checks nothing")
	}
}

// FuzzPathHead: pathHead never panics, and a head it returns is the
// expression's first segment.
func FuzzPathHead(f *testing.F) {
	for _, s := range []string{"text.div", "Patient.birthDate", "a..b", "", ".", "value", "x(y).z", "\xff.a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		h := pathHead(expr)
		if h == "" {
			return
		}
		if !strings.HasPrefix(expr, h) || (len(expr) > len(h) && expr[len(h)] != '.') {
			t.Fatalf("pathHead(%q) = %q is not its first segment", expr, h)
		}
		if c := h[0]; c < 'a' || c > 'z' {
			t.Fatalf("pathHead(%q) = %q starts with a type name or a non-letter", expr, h)
		}
	})
}
