package fhirpath

import (
	"errors"
	"math/big"
	"strings"
)

// Quantity is a FHIRPath Quantity: a decimal value and a unit that is either
// a UCUM code or a calendar duration keyword (Calendar true).
type Quantity struct {
	Value    Decimal
	Unit     string
	Calendar bool
}

// String renders the quantity as a FHIRPath literal: 1 'mg', 4 days.
func (q Quantity) String() string {
	if q.Calendar {
		return q.Value.String() + " " + q.Unit
	}
	return q.Value.String() + " '" + q.Unit + "'"
}

// ucumForCalendar maps calendar keywords to the UCUM unit they are equal to;
// year and month have no definite UCUM equivalent.
var ucumForCalendar = map[string]string{
	"week": "wk", "day": "d", "hour": "h", "minute": "min", "second": "s", "millisecond": "ms",
}

var calendarForUCUM = map[string]string{
	"wk": "week", "d": "day", "h": "hour", "min": "minute", "s": "second", "ms": "millisecond",
}

// calendarUnit returns the calendar keyword usable for date arithmetic, or "".
func (q Quantity) calendarUnit() string {
	if c, ok := calendarUnits[q.Unit]; ok {
		return c // calendar keyword, also accepted when quoted ('month')
	}
	if q.Calendar {
		return ""
	}
	return calendarForUCUM[q.Unit]
}

// canonical returns the value in base units and its dimensions. Calendar
// years and months get a dimension of their own (a calendar month), so they
// compare with each other but not with UCUM 'a' or 'mo'.
func (q Quantity) canonical() (Decimal, dims, bool) {
	unit := q.Unit
	if c, ok := calendarUnits[unit]; ok {
		switch c {
		case "year":
			return q.Value.mul(DecimalFromInt(12)), calMonthDims, true
		case "month":
			return q.Value, calMonthDims, true
		}
		unit = ucumForCalendar[c]
	}
	u, ok := parseUCUM(unit)
	if !ok {
		return Decimal{}, dims{}, false
	}
	return q.Value.mul(ratFactor(u.factor)), u.dims, true
}

// calMonthDims is a pseudo-dimension for calendar months (never produced by
// UCUM parsing, whose exponents stay far below 100).
var calMonthDims = dims{dimIU: 100}

// ratFactor converts a conversion factor to an exact decimal when it
// terminates, else to 30 digits.
func ratFactor(r *big.Rat) Decimal {
	den := new(big.Int).Set(r.Denom())
	two, five := big.NewInt(2), big.NewInt(5)
	n2, n5 := 0, 0
	m := new(big.Int)
	for {
		q, rem := new(big.Int).QuoRem(den, two, m)
		if rem.Sign() != 0 {
			break
		}
		den = q
		n2++
	}
	for {
		q, rem := new(big.Int).QuoRem(den, five, m)
		if rem.Sign() != 0 {
			break
		}
		den = q
		n5++
	}
	if den.Cmp(bigOne) == 0 && max(n2, n5) <= 60 {
		return ratToDecimal(r, int32(max(n2, n5)))
	}
	return ratToDecimal(r, 30).trim(0)
}

// compareQuantity compares two quantities after unit conversion. ok is
// false when they are not comparable.
func compareQuantity(a, b Quantity) (int, bool) {
	if a.Unit == b.Unit && a.Calendar == b.Calendar {
		return a.Value.Cmp(b.Value), true
	}
	av, ad, ok1 := a.canonical()
	bv, bd, ok2 := b.canonical()
	if !ok1 || !ok2 || ad != bd {
		return 0, false
	}
	return av.Cmp(bv), true
}

// equivalentQuantity: equal after conversion when compared at the
// precision of the less precise operand (the one whose last digit stands
// for the larger amount), in that operand's unit.
func equivalentQuantity(a, b Quantity) bool {
	if a.Unit == b.Unit && a.Calendar == b.Calendar {
		return decimalEquivalent(a.Value, b.Value)
	}
	_, ad, ok1 := a.canonical()
	_, bd, ok2 := b.canonical()
	if !ok1 || !ok2 || ad != bd {
		return false
	}
	step := func(q Quantity) *big.Rat {
		unit := Quantity{Value: Decimal{u: bigOne, scale: q.Value.scale}, Unit: q.Unit, Calendar: q.Calendar}
		v, _, _ := unit.canonical()
		return v.rat()
	}
	ref, other := a, b
	if step(b).Cmp(step(a)) > 0 {
		ref, other = b, a
	}
	rv, _, _ := ref.canonical()
	ov, _, _ := other.canonical()
	one := Quantity{Value: DecimalFromInt(1), Unit: ref.Unit, Calendar: ref.Calendar}
	f, _, _ := one.canonical()
	if f.Sign() == 0 {
		return false
	}
	// other expressed in ref's unit
	conv := new(big.Rat).Quo(ov.rat(), f.rat())
	s := ref.Value.scale
	_ = rv
	return ratToDecimal(conv, s).Cmp(ref.Value.round(s)) == 0
}

func decimalEquivalent(a, b Decimal) bool {
	s := min(a.scale, b.scale)
	return a.round(s).Cmp(b.round(s)) == 0
}

// ucumCode returns the UCUM code for arithmetic, converting the calendar
// keywords that have an equivalent.
func (q Quantity) ucumCode() (string, bool) {
	if c, ok := calendarUnits[q.Unit]; ok {
		u, ok := ucumForCalendar[c]
		return u, ok
	}
	if _, ok := parseUCUM(q.Unit); !ok {
		return "", false
	}
	return q.Unit, true
}

var errIncompatibleUnits = errors.New("incompatible units")

// addQuantity adds (sign 1) or subtracts (sign -1) b from a, in a's unit.
func addQuantity(a, b Quantity, sign int) (Quantity, error) {
	if sign < 0 {
		b.Value = b.Value.neg()
	}
	if a.Unit == b.Unit && a.Calendar == b.Calendar {
		return Quantity{Value: a.Value.add(b.Value), Unit: a.Unit, Calendar: a.Calendar}, nil
	}
	ac, ok1 := a.ucumCode()
	bc, ok2 := b.ucumCode()
	if !ok1 || !ok2 {
		return Quantity{}, errIncompatibleUnits
	}
	au, _ := parseUCUM(ac)
	bu, _ := parseUCUM(bc)
	if au.dims != bu.dims {
		return Quantity{}, errIncompatibleUnits
	}
	f := new(big.Rat).Quo(bu.factor, au.factor)
	bv := new(big.Rat).Mul(b.Value.rat(), f)
	conv := ratToDecimal(bv, max(a.Value.scale, b.Value.scale)+6).trim(max(a.Value.scale, b.Value.scale))
	return Quantity{Value: a.Value.add(conv), Unit: a.Unit, Calendar: a.Calendar}, nil
}

func wrapUnit(u string) string {
	if strings.ContainsAny(u, "./") {
		return "(" + u + ")"
	}
	return u
}

// mulQuantity multiplies (div false) or divides quantities, combining units.
func mulQuantity(a, b Quantity, div bool) (Quantity, error) {
	ac, ok1 := a.ucumCode()
	bc, ok2 := b.ucumCode()
	if !ok1 || !ok2 {
		return Quantity{}, errIncompatibleUnits
	}
	var v Decimal
	if div {
		r, ok := a.Value.div(b.Value)
		if !ok {
			return Quantity{}, errDivZero
		}
		v = r
	} else {
		v = a.Value.mul(b.Value)
	}
	var unit string
	switch {
	case div && ac == bc:
		unit = "1"
	case div && bc == "1":
		unit = ac
	case div && ac == "1":
		unit = "/" + wrapUnit(bc)
	case div:
		unit = ac + "/" + wrapUnit(bc)
	case ac == "1":
		unit = bc
	case bc == "1":
		unit = ac
	default:
		unit = ac + "." + wrapUnit(bc)
	}
	return Quantity{Value: v, Unit: unit}, nil
}

var errDivZero = errors.New("division by zero")
