package search

import (
	"math"
	"strings"
)

// UCUMSystem is the code system of UCUM units.
const UCUMSystem = "http://unitsofmeasure.org"

// A unit conversion: value in the canonical unit = value * mult * 10^exp.
// Keeping the power of ten apart lets pure prefix conversions be one exact
// multiplication or division by a power of ten, so 5 mg and 5000 ug land on
// the same float.
type scale struct {
	mult float64
	exp  int
}

func (s scale) apply(v float64) float64 {
	v *= s.mult
	switch {
	case s.exp > 0:
		v *= math.Pow10(s.exp)
	case s.exp < 0:
		v /= math.Pow10(-s.exp)
	}
	return v
}

// ucumPrefixes are the metric prefixes (UCUM codes) as powers of ten.
var ucumPrefixes = map[string]int{
	"Y": 24, "Z": 21, "E": 18, "P": 15, "T": 12, "G": 9, "M": 6, "k": 3, "h": 2, "da": 1,
	"d": -1, "c": -2, "m": -3, "u": -6, "n": -9, "p": -12, "f": -15, "a": -18,
}

// ucumAtom is a unit the canonicaliser knows: its canonical base and scale,
// and whether metric prefixes apply.
type ucumAtom struct {
	base   string
	s      scale
	metric bool
}

var ucumAtoms = map[string]ucumAtom{
	"g":   {"g", scale{1, 0}, true},
	"L":   {"L", scale{1, 0}, true},
	"l":   {"L", scale{1, 0}, true},
	"m":   {"m", scale{1, 0}, true},
	"s":   {"s", scale{1, 0}, true},
	"mol": {"mol", scale{1, 0}, true},
	"eq":  {"eq", scale{1, 0}, true},
	"Pa":  {"Pa", scale{1, 0}, true},
	"U":   {"U", scale{1, 0}, true},
	"min": {"s", scale{60, 0}, false},
	"h":   {"s", scale{3600, 0}, false},
	"d":   {"s", scale{86400, 0}, false},
	"wk":  {"s", scale{604800, 0}, false},

	"[lb_av]": {"g", scale{453.59237, 0}, false},
	"[oz_av]": {"g", scale{28.349523125, 0}, false},
	"[in_i]":  {"m", scale{254, -4}, false},
	"[ft_i]":  {"m", scale{3048, -4}, false},
	"[IU]":    {"[IU]", scale{1, 0}, true},
	"[iU]":    {"[IU]", scale{1, 0}, true},
}

// atom resolves one UCUM unit term without operators: "mg", "dL", "h".
// An exact atom wins over a prefix reading ("m" is metre, "min" minute,
// "d" day, "Pa" pascal).
func atom(t string) (ucumAtom, bool) {
	if a, ok := ucumAtoms[t]; ok {
		return a, true
	}
	for _, n := range []int{2, 1} {
		if len(t) <= n {
			continue
		}
		e, ok := ucumPrefixes[t[:n]]
		if !ok {
			continue
		}
		if a, ok := ucumAtoms[t[n:]]; ok && a.metric {
			a.s.exp += e
			return a, true
		}
	}
	return ucumAtom{}, false
}

// CanonicalUnit converts a UCUM unit code to its canonical form for search:
// the base of each term ("mg/dL" -> "g/L"), with the factor a value in the
// code's unit is multiplied by. Handled: one atom, or atom/atom, or /atom
// ("/min"), with metric prefixes on metric atoms and the avoirdupois pound
// and ounce, inch and foot, minute, hour, day and week. Non-linear units
// (Cel, [degF]), arbitrary ones in braces and molar/mass conversions (which
// need a molar mass) are not converted. ok is false when the code is not
// understood.
func CanonicalUnit(code string) (canon string, convert func(float64) float64, ok bool) {
	if code == "" || len(code) > 32 {
		return "", nil, false
	}
	num, den, slash := strings.Cut(code, "/")
	if strings.Contains(den, "/") || strings.ContainsAny(code, "{}.^*") {
		return "", nil, false
	}
	var sn, sd scale
	var bn, bd string
	if num != "" {
		a, ok := atom(num)
		if !ok {
			return "", nil, false
		}
		sn, bn = a.s, a.base
	} else if !slash {
		return "", nil, false
	} else {
		sn = scale{1, 0}
	}
	if slash {
		a, ok := atom(den)
		if !ok {
			return "", nil, false
		}
		sd, bd = a.s, a.base
		canon = bn + "/" + bd
	} else {
		canon = bn
	}
	// value(code) * sn / sd = value(canonical)
	s := scale{mult: sn.mult, exp: sn.exp}
	if slash {
		s.mult /= sd.mult
		s.exp -= sd.exp
	}
	return canon, s.apply, true
}

// canonicalQuantity returns the entry or value numbers expressed in the
// canonical unit, or ok false when the unit is not convertible or already
// canonical.
func canonicalNums(code string, n, lo, hi float64) (canon string, cn, clo, chi float64, ok bool) {
	canon, conv, ok := CanonicalUnit(code)
	if !ok || canon == code {
		return "", 0, 0, 0, false
	}
	cn = conv(n)
	clo, chi = lo, hi
	if !(lo == 0 && hi == 0) {
		if lo != openLow {
			clo = conv(lo)
		}
		if hi != openHigh {
			chi = conv(hi)
		}
	}
	return canon, cn, clo, chi, true
}
