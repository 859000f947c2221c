package fhirpath

import "testing"

func TestDecimal(t *testing.T) {
	cases := []struct{ a, op, b, want string }{
		{"1.10", "+", "2.205", "3.305"},
		{"0.1", "-", "0.3", "-0.2"},
		{"1.5", "*", "-2.25", "-3.375"},
		{"1", "/", "3", "0.3333333333333333"},
		{"10", "/", "4", "2.5"},
		{"2.50", "round1", "", "2.5"},
		{"-2.45", "round1", "", "-2.5"},
		{"-1.5", "floor", "", "-2"},
		{"-1.5", "ceil", "", "-1"},
		{"1e3", "+", "0", "1000"},
		{"1.5E-2", "+", "0", "0.015"},
	}
	for _, tc := range cases {
		a, err := ParseDecimal(tc.a)
		if err != nil {
			t.Fatalf("parse %s: %v", tc.a, err)
		}
		var got string
		switch tc.op {
		case "+", "-", "*", "/":
			b, _ := ParseDecimal(tc.b)
			switch tc.op {
			case "+":
				got = a.add(b).String()
			case "-":
				got = a.sub(b).String()
			case "*":
				got = a.mul(b).String()
			case "/":
				r, _ := a.div(b)
				got = r.String()
			}
		case "round1":
			got = a.round(1).String()
		case "floor":
			got = a.floorInt().String()
		case "ceil":
			got = a.ceilInt().String()
		}
		if got != tc.want {
			t.Errorf("%s %s %s = %s, want %s", tc.a, tc.op, tc.b, got, tc.want)
		}
	}
	for _, bad := range []string{"", "-", ".5", "1.", "1.2.3", "0x10", "1e", "１"} {
		if _, err := ParseDecimal(bad); err == nil {
			t.Errorf("ParseDecimal(%q) accepted", bad)
		}
	}
}

func TestUCUM(t *testing.T) {
	cases := []struct {
		a, b string
		same bool
	}{
		{"mg/dL", "g/L", true},
		{"mmol/L", "umol/mL", true},
		{"kg.m/s2", "N", true},
		{"/min", "Hz", true},
		{"10*3/uL", "10*9/L", true},
		{"[lb_av]", "kg", true},
		{"mm[Hg]", "kPa", true},
		{"%", "1", true},
		{"{beats}/min", "/min", true},
		{"mg", "mL", false},
		{"m2", "m", false},
		{"[iU]/L", "mol/L", false},
	}
	for _, tc := range cases {
		a, ok1 := parseUCUM(tc.a)
		b, ok2 := parseUCUM(tc.b)
		if !ok1 || !ok2 {
			t.Errorf("parse %s / %s: %v %v", tc.a, tc.b, ok1, ok2)
			continue
		}
		if (a.dims == b.dims) != tc.same {
			t.Errorf("%s vs %s: same dimension = %v, want %v", tc.a, tc.b, a.dims == b.dims, tc.same)
		}
	}
	for _, bad := range []string{"", "m/", "foo", "m^^2", "((m)", "m.", "10*", "[lb_av"} {
		if _, ok := parseUCUM(bad); ok {
			t.Errorf("parseUCUM(%q) accepted", bad)
		}
	}
}

func TestDateTimeCompare(t *testing.T) {
	cases := []struct {
		a, b string
		c    int
		ok   bool
	}{
		{"2024-01-02", "2024-01-03", -1, true},
		{"2024-01", "2024-01-15", 0, false},
		{"2024-01", "2024-02-15", -1, true},
		{"2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00Z", 0, true},
		{"2024-01-01T10:00:00", "2024-01-01T08:00:00Z", 0, false},
		{"2024-01-01T10:00:00", "2024-01-01T10:00:00.000", 0, true},
		{"T10:00", "T10:00:01", 0, false},
		{"T09:59", "T10:00:01", -1, true},
	}
	for _, tc := range cases {
		a, err1 := parseDateTimeLiteral(tc.a)
		b, err2 := parseDateTimeLiteral(tc.b)
		if err1 != nil || err2 != nil {
			t.Fatalf("parse %s %s: %v %v", tc.a, tc.b, err1, err2)
		}
		c, ok := compareDT(a, b)
		if ok != tc.ok || (ok && c != tc.c) {
			t.Errorf("compare %s %s = %d,%v want %d,%v", tc.a, tc.b, c, ok, tc.c, tc.ok)
		}
	}
	for _, bad := range []string{"2024-02-30", "2024-13", "24", "2024-01-01T25:00", "T10:61", "2024-01-01T10:00:00+15:00"} {
		if _, err := parseDateTimeLiteral(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
