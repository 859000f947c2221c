package fhirpath

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Decimal is an exact decimal number: Unscaled × 10^-Scale. The scale is the
// number of digits after the point and is kept, so 1.10 prints as "1.10"
// while comparing equal to 1.1. Values are immutable.
type Decimal struct {
	u     *big.Int
	scale int32
}

// maxDecimalScale bounds the digits after the point that arithmetic keeps.
const maxDecimalScale = 40

// divScale is the number of digits kept by division (the specification asks
// for at least 8).
const divScale = 16

var (
	bigTen  = big.NewInt(10)
	bigZero = big.NewInt(0)
	bigOne  = big.NewInt(1)
)

var errBadDecimal = errors.New("invalid decimal")

// ParseDecimal parses a decimal in FHIR/JSON syntax (optional sign, digits,
// optional fraction, optional exponent).
func ParseDecimal(s string) (Decimal, error) { return parseDecimal(s) }

func parseDecimal(s string) (Decimal, error) {
	if s == "" || len(s) > 400 {
		return Decimal{}, errBadDecimal
	}
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 1000 || e < -1000 {
			return Decimal{}, errBadDecimal
		}
		exp = e
		s = s[:i]
	}
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i+1:]
		if frac == "" {
			return Decimal{}, errBadDecimal
		}
	}
	if intPart == "" {
		return Decimal{}, errBadDecimal
	}
	for _, c := range []byte(intPart + frac) {
		if c < '0' || c > '9' {
			return Decimal{}, errBadDecimal
		}
	}
	u, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok {
		return Decimal{}, errBadDecimal
	}
	if neg {
		u.Neg(u)
	}
	scale := len(frac) - exp
	if scale < 0 {
		u.Mul(u, pow10(-scale))
		scale = 0
	}
	if scale > 1000 {
		return Decimal{}, errBadDecimal
	}
	return Decimal{u: u, scale: int32(scale)}, nil
}

func pow10(n int) *big.Int {
	return new(big.Int).Exp(bigTen, big.NewInt(int64(n)), nil)
}

// DecimalFromInt converts an integer.
func DecimalFromInt(v int64) Decimal { return Decimal{u: big.NewInt(v)} }

func (d Decimal) unscaled() *big.Int {
	if d.u == nil {
		return bigZero
	}
	return d.u
}

// Scale is the number of digits after the point.
func (d Decimal) Scale() int { return int(d.scale) }

// String formats the decimal with exactly Scale digits after the point.
func (d Decimal) String() string {
	u := d.unscaled()
	neg := u.Sign() < 0
	s := new(big.Int).Abs(u).String()
	if d.scale > 0 {
		if len(s) <= int(d.scale) {
			s = strings.Repeat("0", int(d.scale)-len(s)+1) + s
		}
		s = s[:len(s)-int(d.scale)] + "." + s[len(s)-int(d.scale):]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// rescale returns d with the given scale (>= d.scale) exactly.
func (d Decimal) rescale(scale int32) Decimal {
	if scale == d.scale {
		return d
	}
	if scale > d.scale {
		return Decimal{u: new(big.Int).Mul(d.unscaled(), pow10(int(scale-d.scale))), scale: scale}
	}
	return d.round(scale)
}

// round rounds half away from zero to the given number of digits.
func (d Decimal) round(scale int32) Decimal {
	if scale >= d.scale {
		return d.rescale(scale)
	}
	div := pow10(int(d.scale - scale))
	q, r := new(big.Int).QuoRem(d.unscaled(), div, new(big.Int))
	r2 := new(big.Int).Mul(new(big.Int).Abs(r), big.NewInt(2))
	if r2.Cmp(div) >= 0 {
		if d.unscaled().Sign() < 0 {
			q.Sub(q, bigOne)
		} else {
			q.Add(q, bigOne)
		}
	}
	return Decimal{u: q, scale: scale}
}

// trim removes trailing zeros down to minScale.
func (d Decimal) trim(minScale int32) Decimal {
	u := new(big.Int).Set(d.unscaled())
	s := d.scale
	r := new(big.Int)
	for s > minScale {
		q, rem := new(big.Int).QuoRem(u, bigTen, r)
		if rem.Sign() != 0 {
			break
		}
		u = q
		s--
	}
	return Decimal{u: u, scale: s}
}

// Cmp compares numerically (-1, 0, 1).
func (d Decimal) Cmp(o Decimal) int {
	s := max(d.scale, o.scale)
	return d.rescale(s).unscaled().Cmp(o.rescale(s).unscaled())
}

// Sign is -1, 0 or 1.
func (d Decimal) Sign() int { return d.unscaled().Sign() }

func (d Decimal) add(o Decimal) Decimal {
	s := max(d.scale, o.scale)
	return Decimal{u: new(big.Int).Add(d.rescale(s).unscaled(), o.rescale(s).unscaled()), scale: s}
}

func (d Decimal) neg() Decimal { return Decimal{u: new(big.Int).Neg(d.unscaled()), scale: d.scale} }

func (d Decimal) sub(o Decimal) Decimal { return d.add(o.neg()) }

func (d Decimal) mul(o Decimal) Decimal {
	r := Decimal{u: new(big.Int).Mul(d.unscaled(), o.unscaled()), scale: d.scale + o.scale}
	if r.scale > maxDecimalScale {
		r = r.round(maxDecimalScale)
	}
	return r
}

// div divides with divScale digits, then drops trailing zeros down to the
// larger operand scale. ok is false on division by zero.
func (d Decimal) div(o Decimal) (Decimal, bool) {
	if o.Sign() == 0 {
		return Decimal{}, false
	}
	r := new(big.Rat).SetFrac(d.unscaled(), o.unscaled())
	// d/o = (du/ou) * 10^(os-ds)
	shift := int(o.scale) - int(d.scale)
	if shift > 0 {
		r.Mul(r, new(big.Rat).SetInt(pow10(shift)))
	} else if shift < 0 {
		r.Quo(r, new(big.Rat).SetInt(pow10(-shift)))
	}
	q := ratToDecimal(r, divScale)
	return q.trim(max(d.scale, o.scale)), true
}

// ratToDecimal rounds r half away from zero to scale digits.
func ratToDecimal(r *big.Rat, scale int32) Decimal {
	num := new(big.Int).Mul(r.Num(), pow10(int(scale)))
	den := r.Denom()
	q, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	rem2 := new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2))
	if rem2.Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, bigOne)
		} else {
			q.Add(q, bigOne)
		}
	}
	return Decimal{u: q, scale: scale}
}

func (d Decimal) rat() *big.Rat {
	r := new(big.Rat).SetInt(d.unscaled())
	if d.scale > 0 {
		r.Quo(r, new(big.Rat).SetInt(pow10(int(d.scale))))
	}
	return r
}

// truncInt returns the integer part (towards zero).
func (d Decimal) truncInt() *big.Int {
	if d.scale == 0 {
		return d.unscaled()
	}
	return new(big.Int).Quo(d.unscaled(), pow10(int(d.scale)))
}

func (d Decimal) floorInt() *big.Int {
	if d.scale == 0 {
		return d.unscaled()
	}
	q, m := new(big.Int).DivMod(d.unscaled(), pow10(int(d.scale)), new(big.Int))
	_ = m
	return q // Euclidean division floors for positive divisors
}

func (d Decimal) ceilInt() *big.Int {
	f := d.floorInt()
	if DecimalFromBig(f).Cmp(d) == 0 {
		return f
	}
	return new(big.Int).Add(f, bigOne)
}

// DecimalFromBig converts an integer.
func DecimalFromBig(b *big.Int) Decimal { return Decimal{u: b} }

// Float64 is the nearest float64.
func (d Decimal) Float64() float64 {
	f, _ := strconv.ParseFloat(d.String(), 64)
	return f
}

// decimalFromFloat converts a float result of a transcendental function,
// keeping 15 significant digits and dropping trailing zeros.
func decimalFromFloat(f float64) (Decimal, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Decimal{}, false
	}
	d, err := parseDecimal(strconv.FormatFloat(f, 'e', 14, 64))
	if err != nil {
		return Decimal{}, false
	}
	return d.trim(0), true
}

// int64Value reports the value as int64 when it is an integer in range.
func bigToInt64(b *big.Int) (int64, bool) {
	if !b.IsInt64() {
		return 0, false
	}
	return b.Int64(), true
}
