package search_test

import (
	"math"
	"testing"

	"phix/fhir/search"
)

func TestCanonicalUnit(t *testing.T) {
	tests := []struct {
		code  string
		canon string
		in    float64
		out   float64
	}{
		{"mg", "g", 5, 0.005},
		{"ug", "g", 5000, 0.005},
		{"kg", "g", 70, 70000},
		{"g", "g", 3, 3},
		{"mL", "L", 250, 0.25},
		{"dL", "L", 1, 0.1},
		{"mg/dL", "g/L", 100, 1},
		{"mmol/L", "mol/L", 5.5, 0.0055},
		{"umol/L", "mol/L", 80, 0.00008},
		{"/min", "/s", 60, 1},
		{"min", "s", 2, 120},
		{"h", "s", 1, 3600},
		{"d", "s", 1, 86400},
		{"cm", "m", 180, 1.8},
		{"mm", "m", 5, 0.005},
		{"[in_i]", "m", 10, 0.254},
		{"[lb_av]", "g", 2, 907.18474},
		{"kPa", "Pa", 1, 1000},
		{"m[IU]/L", "[IU]/L", 5, 0.005},
	}
	for _, tt := range tests {
		canon, conv, ok := search.CanonicalUnit(tt.code)
		if !ok || canon != tt.canon || math.Abs(conv(tt.in)-tt.out) > 1e-12*math.Max(1, math.Abs(tt.out)) {
			t.Errorf("%s: %q %v", tt.code, canon, ok)
			continue
		}
	}
	// Prefix conversions of equal amounts land on the same float.
	_, mg, _ := search.CanonicalUnit("mg")
	_, ug, _ := search.CanonicalUnit("ug")
	if mg(5) != ug(5000) {
		t.Errorf("5 mg = %v g, 5000 ug = %v g", mg(5), ug(5000))
	}
	for _, bad := range []string{"", "Cel", "[degF]", "mm[Hg]", "{beats}/min", "10*3/uL", "kg/m2", "a", "mo", "xg", "g/L/s", "cd"} {
		if _, _, ok := search.CanonicalUnit(bad); ok {
			t.Errorf("%q converted", bad)
		}
	}
}

func TestOfType(t *testing.T) {
	q, _, err := search.Parse("Patient", mustQuery(t, "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053"), search.ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	v := q.Clauses[0].Values[0]
	if q.Clauses[0].Modifier != "of-type" || v.System != "http://terminology.hl7.org/CodeSystem/v2-0203" || v.Code != "MR" || v.Ident != "446053" {
		t.Errorf("%+v", v)
	}
	for _, bad := range []string{"identifier:of-type=a|b", "identifier:of-type=|MR|1", "identifier:of-type=a|b|", "gender:of-type=a|b|c"} {
		if _, _, err := search.Parse("Patient", mustQuery(t, bad), search.ParseOptions{}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	r := decode(t, []byte(`{"resourceType":"Patient","id":"x","identifier":[
	  {"type":{"coding":[{"system":"s1","code":"MR"},{"system":"s2","code":"X"}],"text":"Medical record"},"system":"urn:h","value":"1"},
	  {"system":"urn:h","value":"2"}]}`))
	var got []string
	for _, e := range search.ExtractParam(r, search.Lookup("Patient", "identifier")) {
		got = append(got, e.TypeSystem+"|"+e.TypeCode+"|"+e.Code+"|"+e.Str)
	}
	want := []string{"s1|MR|1|medical record", "s2|X|1|medical record", "||2|"}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%v, want %v", got, want)
		}
	}
}

// FuzzCanonicalUnit: any unit code either converts to a finite, positive
// scale or is refused; never a panic.
func FuzzCanonicalUnit(f *testing.F) {
	for _, s := range []string{"mg", "mg/dL", "/min", "[lb_av]", "kPa", "m[IU]/L", "dam", "Cel", "10*3/uL", "", "/", "g/", "daL/h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		canon, conv, ok := search.CanonicalUnit(code)
		if !ok {
			return
		}
		if canon == "" || conv == nil {
			t.Fatalf("%q: ok without a unit", code)
		}
		if v := conv(1); !(v > 0) || math.IsInf(v, 0) {
			t.Fatalf("%q: scale %v", code, v)
		}
	})
}
