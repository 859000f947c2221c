package patch

import (
	"encoding/json"
	"testing"

	"phix/fhir"
	"phix/internal/testenv"
)

// syntheaPatient returns the first Synthea Patient: its bytes and parsed object.
func syntheaPatient(b *testing.B) ([]byte, map[string]any) {
	b.Helper()
	for _, bun := range testenv.SyntheaBundles(b) {
		for _, raw := range bun.Entries(b) {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			if json.Unmarshal(raw, &head) == nil && head.ResourceType == "Patient" {
				res, err := fhir.Parse(raw, fhir.ParseOptions{})
				if err != nil {
					b.Fatal(err)
				}
				return raw, res.Object
			}
		}
	}
	testenv.Missing(b, "no Synthea Patient")
	return nil, nil
}

// The same edits as the patches below make, for checking both agree.
const benchJSONPatch = `[
 {"op":"test","path":"/resourceType","value":"Patient"},
 {"op":"replace","path":"/name/0/family","value":"Patched"},
 {"op":"add","path":"/telecom/-","value":{"system":"email","value":"x@example.org"}},
 {"op":"replace","path":"/maritalStatus/text","value":"M"},
 {"op":"remove","path":"/multipleBirthBoolean"}
]`

var benchFHIRPathPatch = params(
	`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name.where(use = 'official').family"},{"name":"value","valueString":"Patched"}`,
	`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"telecom"},{"name":"value","valueContactPoint":{"system":"email","value":"x@example.org"}}`,
	`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.multipleBirth"}`,
)

// BenchmarkApplyJSONPatch5 applies a parsed 5-operation JSON Patch to a
// Synthea Patient (copy included: a patch never modifies its input).
func BenchmarkApplyJSONPatch5(b *testing.B) {
	_, obj := syntheaPatient(b)
	p, err := ParseJSONPatch([]byte(benchJSONPatch))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ApplyTo(obj); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyFHIRPathPatch3 applies a parsed 3-operation FHIRPath Patch
// to the same Patient.
func BenchmarkApplyFHIRPathPatch3(b *testing.B) {
	_, obj := syntheaPatient(b)
	p, err := ParseFHIRPathPatchJSON([]byte(benchFHIRPathPatch))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ApplyTo(obj); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReparseMarshal is the peer: a full fhir.Parse and fhir.Marshal
// of the same Patient, what an update of the resource costs before
// validation.
func BenchmarkReparseMarshal(b *testing.B) {
	raw, _ := syntheaPatient(b)
	b.ReportAllocs()
	for b.Loop() {
		res, err := fhir.Parse(raw, fhir.ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fhir.Marshal(res); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchPatchesAgree keeps the benchmark honest: both patches apply to
// the Patient and make the same family-name and telecom edits.
func TestBenchPatchesAgree(t *testing.T) {
	bundles := testenv.SyntheaBundles(t)
	var obj map[string]any
	for _, raw := range bundles[0].Entries(t) {
		res, err := fhir.Parse(raw, fhir.ParseOptions{})
		if err == nil && res.Type == "Patient" {
			obj = res.Object
			break
		}
	}
	if obj == nil {
		t.Fatal("no Patient in the first Synthea bundle")
	}
	jp, err := ParseJSONPatch([]byte(benchJSONPatch))
	if err != nil {
		t.Fatal(err)
	}
	fp, err := ParseFHIRPathPatchJSON([]byte(benchFHIRPathPatch))
	if err != nil {
		t.Fatal(err)
	}
	a, err := jp.ApplyTo(obj)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fp.ApplyTo(obj)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "telecom", "multipleBirthBoolean"} {
		if !jsonEqual(a[k], c[k]) {
			t.Errorf("%s differs: %s vs %s", k, canon(t, a[k]), canon(t, c[k]))
		}
	}
	if _, ok := a["multipleBirthBoolean"]; ok {
		t.Error("multipleBirthBoolean not removed")
	}
	res := &fhir.Resource{Type: "Patient", ID: a["id"].(string), Object: a}
	for _, is := range fhir.Validate(res) {
		if is.Severity == "error" {
			t.Errorf("patched Patient invalid: %s %v", is.Diagnostics, is.Expression)
		}
	}
}
