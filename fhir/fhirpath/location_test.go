package fhirpath

import (
	"reflect"
	"testing"
)

func TestItemLocation(t *testing.T) {
	p := mustJSON(t, `{"resourceType":"Observation","id":"o","status":"final",
	 "valueBoolean":true,
	 "component":[{"valueQuantity":{"value":5}},{"valueInteger":7}],
	 "code":{"coding":[{"code":"a"},{"code":"b"}]},
	 "_status":{"id":"s1","extension":[{"url":"u","valueString":"x"}]},
	 "extension":[{"url":"v","valueString":"y"},{"url":"w","valueString":"z"}]}`)
	comps := p["component"].([]any)
	code := p["code"].(map[string]any)
	statusExt := p["_status"].(map[string]any)
	tests := []struct {
		expr  string
		par   map[string]any
		key   string
		index int
	}{
		{"Observation.status", p, "status", -1},
		{"Observation.value", p, "valueBoolean", -1},
		{"Observation.component[1].value", comps[1].(map[string]any), "valueInteger", -1},
		{"Observation.component[0].value.value", comps[0].(map[string]any)["valueQuantity"].(map[string]any), "value", -1},
		{"Observation.code.coding[1]", code, "coding", 1},
		{"Observation.code.coding.code[1]", code["coding"].([]any)[1].(map[string]any), "code", -1},
		{"Observation.status.id", statusExt, "id", -1},
		{"Observation.status.extension", statusExt, "extension", 0},
		{"Observation.extension('w')", p, "extension", 1},
		{"Observation.children().where($this = 'final')", p, "status", -1},
	}
	for _, tc := range tests {
		res, err := MustCompile(tc.expr).EvaluateResource(&EvalContext{}, p)
		if err != nil || len(res) != 1 {
			t.Fatalf("%s: %v %v", tc.expr, res, err)
		}
		par, key, idx, ok := res[0].Location()
		if !ok || key != tc.key || idx != tc.index || mapAddr(par) != mapAddr(tc.par) {
			t.Errorf("%s: got %q %d %v, want %q %d", tc.expr, key, idx, ok, tc.key, tc.index)
		}
	}
	if _, _, _, ok := NewResourceItem(p).Location(); ok {
		t.Error("root has a location")
	}
	res, _ := MustCompile("'x'").EvaluateResource(&EvalContext{}, p)
	if _, _, _, ok := res[0].Location(); ok {
		t.Error("System value has a location")
	}
}

func mapAddr(m map[string]any) uintptr { return reflect.ValueOf(m).Pointer() }

func TestAsFunctionFilters(t *testing.T) {
	p := mustJSON(t, `{"resourceType":"Observation","status":"final","valueQuantity":{"value":1},
	 "extension":[{"url":"a","valueCanonical":"http://x"},{"url":"b","valueString":"s"},{"url":"c","valueCanonical":"http://y"}]}`)
	for expr, want := range map[string]int{
		"descendants().as(canonical)":    2,
		"extension.value.as(canonical)":  2,
		"extension.value.as(string)":     1,
		"Observation.value.as(Quantity)": 1,
		"Observation.value.as(Period)":   0,
		"(extension.value as canonical)": 2,
		"descendants().as(canonical).count() = descendants().ofType(canonical).count()": 1,
	} {
		res, err := MustCompile(expr).EvaluateResource(&EvalContext{}, p)
		if err != nil || len(res) != want {
			t.Errorf("%s: got %d items (%v), want %d", expr, len(res), err, want)
		}
	}
}

func TestChildrenOfPrimitiveIncludeID(t *testing.T) {
	p := mustJSON(t, `{"resourceType":"Patient","birthDate":"1970",
	 "_birthDate":{"id":"b1","extension":[{"url":"u","valueString":"x"}]}}`)
	res, err := MustCompile("Patient.birthDate.children()").EvaluateResource(&EvalContext{}, p)
	if err != nil || len(res) != 2 {
		t.Fatalf("got %v, %v", res, err)
	}
	if res[0].Value() != "b1" || res[1].FHIRType() != "Extension" {
		t.Errorf("children = %v", res)
	}
}
