package fhirpath

import (
	"math/big"
	"strings"
	"sync"
)

// A small UCUM implementation: enough of the unit grammar (prefixes,
// products '.', quotients '/', exponents, parentheses, annotations, powers
// of ten) and of the atom table to compare and convert the units that occur
// in clinical data. Units it does not know are compared by identical code
// only.

// dimension indexes
const (
	dimM = iota
	dimS
	dimG
	dimRad
	dimK
	dimC
	dimCd
	dimMol
	dimIU
	numDims
)

type dims [numDims]int8

type ucumUnit struct {
	factor *big.Rat
	dims   dims
}

type atomDef struct {
	factor string // decimal factor relative to base units
	dims   dims
	metric bool // may take a prefix
}

func d(pairs ...int) dims {
	var r dims
	for i := 0; i+1 < len(pairs); i += 2 {
		r[pairs[i]] = int8(pairs[i+1])
	}
	return r
}

var ucumAtoms = map[string]atomDef{
	"1":        {"1", dims{}, false},
	"m":        {"1", d(dimM, 1), true},
	"s":        {"1", d(dimS, 1), true},
	"g":        {"1", d(dimG, 1), true},
	"rad":      {"1", d(dimRad, 1), true},
	"K":        {"1", d(dimK, 1), true},
	"C":        {"1", d(dimC, 1), true},
	"cd":       {"1", d(dimCd, 1), true},
	"mol":      {"1", d(dimMol, 1), true},
	"eq":       {"1", d(dimMol, 1), true},
	"osm":      {"1", d(dimMol, 1), true},
	"kat":      {"1", d(dimMol, 1, dimS, -1), true},
	"U":        {"1/60000000", d(dimMol, 1, dimS, -1), true}, // umol/min
	"[iU]":     {"1", d(dimIU, 1), true},
	"[IU]":     {"1", d(dimIU, 1), true},
	"sr":       {"1", d(dimRad, 2), true},
	"Hz":       {"1", d(dimS, -1), true},
	"N":        {"1000", d(dimG, 1, dimM, 1, dimS, -2), true},
	"Pa":       {"1000", d(dimG, 1, dimM, -1, dimS, -2), true},
	"J":        {"1000", d(dimG, 1, dimM, 2, dimS, -2), true},
	"W":        {"1000", d(dimG, 1, dimM, 2, dimS, -3), true},
	"A":        {"1", d(dimC, 1, dimS, -1), true},
	"V":        {"1000", d(dimG, 1, dimM, 2, dimS, -2, dimC, -1), true},
	"Ohm":      {"1000", d(dimG, 1, dimM, 2, dimS, -1, dimC, -2), true},
	"S":        {"0.001", d(dimG, -1, dimM, -2, dimS, 1, dimC, 2), true},
	"Bq":       {"1", d(dimS, -1), true},
	"Gy":       {"1", d(dimM, 2, dimS, -2), true},
	"Sv":       {"1", d(dimM, 2, dimS, -2), true},
	"l":        {"0.001", d(dimM, 3), true},
	"L":        {"0.001", d(dimM, 3), true},
	"t":        {"1000000", d(dimG, 1), true},
	"bar":      {"100000000", d(dimG, 1, dimM, -1, dimS, -2), true},
	"cal":      {"4184", d(dimG, 1, dimM, 2, dimS, -2), true},
	"m[Hg]":    {"133322000", d(dimG, 1, dimM, -1, dimS, -2), true},
	"m[H2O]":   {"9806650", d(dimG, 1, dimM, -1, dimS, -2), true},
	"[Cal]":    {"4184000", d(dimG, 1, dimM, 2, dimS, -2), false},
	"min":      {"60", d(dimS, 1), false},
	"h":        {"3600", d(dimS, 1), false},
	"d":        {"86400", d(dimS, 1), false},
	"wk":       {"604800", d(dimS, 1), false},
	"a":        {"31557600", d(dimS, 1), false},
	"a_j":      {"31557600", d(dimS, 1), false},
	"mo":       {"2629800", d(dimS, 1), false},
	"mo_j":     {"2629800", d(dimS, 1), false},
	"%":        {"0.01", dims{}, false},
	"[ppth]":   {"0.001", dims{}, false},
	"[ppm]":    {"0.000001", dims{}, false},
	"[ppb]":    {"0.000000001", dims{}, false},
	"[pi]":     {"3.1415926535897932384626433832795028841971693993751", dims{}, false},
	"deg":      {"0.0174532925199432957692369076848861271344287188854", d(dimRad, 1), false},
	"[in_i]":   {"0.0254", d(dimM, 1), false},
	"[ft_i]":   {"0.3048", d(dimM, 1), false},
	"[yd_i]":   {"0.9144", d(dimM, 1), false},
	"[mi_i]":   {"1609.344", d(dimM, 1), false},
	"[nmi_i]":  {"1852", d(dimM, 1), false},
	"[lb_av]":  {"453.59237", d(dimG, 1), false},
	"[oz_av]":  {"28.349523125", d(dimG, 1), false},
	"[gr]":     {"0.06479891", d(dimG, 1), false},
	"[gal_us]": {"0.003785411784", d(dimM, 3), false},
	"[qt_us]":  {"0.000946352946", d(dimM, 3), false},
	"[pt_us]":  {"0.000473176473", d(dimM, 3), false},
	"[cup_us]": {"0.0002365882365", d(dimM, 3), false},
	"[foz_us]": {"0.0000295735295625", d(dimM, 3), false},
	"[tbs_us]": {"0.00001478676478125", d(dimM, 3), false},
	"[tsp_us]": {"0.00000492892159375", d(dimM, 3), false},
	"[drp]":    {"0.00000005", d(dimM, 3), false},
}

var ucumPrefixes = map[string]string{
	"Y": "1e24", "Z": "1e21", "E": "1e18", "P": "1e15", "T": "1e12", "G": "1e9", "M": "1e6",
	"k": "1e3", "h": "1e2", "da": "1e1", "d": "1e-1", "c": "1e-2", "m": "1e-3", "u": "1e-6",
	"n": "1e-9", "p": "1e-12", "f": "1e-15", "a": "1e-18", "z": "1e-21", "y": "1e-24",
}

var ucumCache sync.Map // string -> *ucumUnit (nil pointer for unknown)

// parseUCUM returns the canonical form of a UCUM code, or ok=false.
func parseUCUM(code string) (*ucumUnit, bool) {
	if v, ok := ucumCache.Load(code); ok {
		u := v.(*ucumUnit)
		return u, u != nil
	}
	u, ok := parseUCUMTerm(code, 0)
	if !ok {
		u = nil
	}
	if len(code) <= 64 {
		ucumCache.Store(code, u)
	}
	return u, ok
}

func unitOne() *ucumUnit { return &ucumUnit{factor: big.NewRat(1, 1)} }

func (u *ucumUnit) mulPow(o *ucumUnit, exp int) {
	f := new(big.Rat).Set(o.factor)
	e := exp
	if e < 0 {
		f.Inv(f)
		e = -e
	}
	for i := 0; i < e; i++ {
		u.factor.Mul(u.factor, f)
	}
	for i := range u.dims {
		u.dims[i] += o.dims[i] * int8(exp)
	}
}

func parseUCUMTerm(s string, depth int) (*ucumUnit, bool) {
	if s == "" || depth > 8 || len(s) > 128 {
		return nil, false
	}
	res := unitOne()
	sign := 1
	i := 0
	if s[0] == '/' {
		sign = -1
		i = 1
	}
	for i <= len(s) {
		// find the end of this component
		j, level := i, 0
		for j < len(s) {
			c := s[j]
			if c == '(' || c == '[' || c == '{' {
				level++
			} else if c == ')' || c == ']' || c == '}' {
				level--
			} else if level == 0 && (c == '.' || c == '/') {
				break
			}
			j++
		}
		comp, ok := parseUCUMComponent(s[i:j], depth)
		if !ok {
			return nil, false
		}
		res.mulPow(comp, sign)
		if j >= len(s) {
			break
		}
		if s[j] == '/' {
			sign = -1
		} else {
			sign = 1
		}
		i = j + 1
		if i >= len(s) {
			return nil, false
		}
	}
	return res, true
}

func parseUCUMComponent(c string, depth int) (*ucumUnit, bool) {
	// annotation: strip; an annotation alone is the unit 1
	if k := strings.IndexByte(c, '{'); k >= 0 {
		if !strings.HasSuffix(c, "}") {
			return nil, false
		}
		c = c[:k]
		if c == "" {
			return unitOne(), true
		}
	}
	if c == "" {
		return nil, false
	}
	if c[0] == '(' {
		end := strings.LastIndexByte(c, ')')
		if end < 0 {
			return nil, false
		}
		inner, ok := parseUCUMTerm(c[1:end], depth+1)
		if !ok {
			return nil, false
		}
		exp, ok := parseExp(c[end+1:])
		if !ok {
			return nil, false
		}
		r := unitOne()
		r.mulPow(inner, exp)
		return r, true
	}
	allDigits := true
	for _, ch := range []byte(c) {
		if ch < '0' || ch > '9' {
			allDigits = false
			break
		}
	}
	if allDigits {
		n, ok := new(big.Rat).SetString(c)
		if !ok {
			return nil, false
		}
		return &ucumUnit{factor: n}, true
	}
	if strings.HasPrefix(c, "10*") || strings.HasPrefix(c, "10^") {
		exp, ok := parseExp(c[3:])
		if !ok || c[3:] == "" || exp > 30 || exp < -30 {
			return nil, false
		}
		r := unitOne()
		r.mulPow(&ucumUnit{factor: big.NewRat(10, 1)}, exp)
		return r, true
	}
	// split off a trailing exponent
	k := len(c)
	for k > 0 && c[k-1] >= '0' && c[k-1] <= '9' {
		k--
	}
	if k > 0 && k < len(c) && (c[k-1] == '-' || c[k-1] == '+') {
		k--
	}
	sym, expStr := c[:k], c[k:]
	if sym == "" {
		return nil, false
	}
	exp, ok := parseExp(expStr)
	if !ok || exp > 10 || exp < -10 {
		return nil, false
	}
	atom, ok := lookupAtom(sym)
	if !ok {
		return nil, false
	}
	r := unitOne()
	r.mulPow(atom, exp)
	return r, true
}

func parseExp(s string) (int, bool) {
	if s == "" {
		return 1, true
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	n, ok := atoiN(s)
	if !ok || n > 100 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func atomUnit(a atomDef) *ucumUnit {
	f, _ := new(big.Rat).SetString(a.factor)
	return &ucumUnit{factor: f, dims: a.dims}
}

func lookupAtom(sym string) (*ucumUnit, bool) {
	if a, ok := ucumAtoms[sym]; ok {
		return atomUnit(a), true
	}
	for _, plen := range []int{2, 1} {
		if len(sym) <= plen {
			continue
		}
		pf, ok := ucumPrefixes[sym[:plen]]
		if !ok {
			continue
		}
		a, ok := ucumAtoms[sym[plen:]]
		if !ok || !a.metric {
			continue
		}
		u := atomUnit(a)
		p, _ := new(big.Rat).SetString(pf)
		u.factor.Mul(u.factor, p)
		return u, true
	}
	return nil, false
}
