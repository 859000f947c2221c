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
