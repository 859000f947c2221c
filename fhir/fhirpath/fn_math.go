package fhirpath

import (
	"math"
	"math/big"
)

// numInput applies the singleton rule and returns an Integer, Decimal or
// Quantity input.
func (st *state) numInput(f *funcNode, in Collection) (any, bool, error) {
	it, ok, err := st.singleton(f, in)
	if err != nil || !ok {
		return nil, false, err
	}
	v, has := it.sys()
	if !has {
		return nil, false, nil
	}
	switch v.(type) {
	case int64, Decimal, Quantity:
		return v, true, nil
	}
	return nil, false, st.errAt(f, KindExecution, CodeType, "%s() needs a number, found %s", f.name, it.Type())
}

func one(v any) Collection { return Collection{sysItem(v)} }

func intOrEmpty(b *big.Int) Collection {
	if v, ok := intResult(b); ok {
		return one(v)
	}
	return nil
}

func floatFn(fn func(x float64) float64) funcImpl {
	return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		v, ok, err := st.numInput(f, in)
		if err != nil || !ok {
			return nil, err
		}
		d, ok := asDecimal(v)
		if !ok {
			return nil, st.errAt(f, KindExecution, CodeType, "%s() needs an Integer or Decimal", f.name)
		}
		r, ok := decimalFromFloat(fn(d.Float64()))
		if !ok {
			return nil, nil
		}
		return one(r), nil
	}
}

func registerMath() {
	reg("abs", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		v, ok, err := st.numInput(f, in)
		if err != nil || !ok {
			return nil, err
		}
		switch x := v.(type) {
		case int64:
			if x < 0 {
				if x == math.MinInt64 {
					return nil, nil
				}
				x = -x
			}
			return one(x), nil
		case Decimal:
			if x.Sign() < 0 {
				x = x.neg()
			}
			return one(x), nil
		case Quantity:
			if x.Value.Sign() < 0 {
				x.Value = x.Value.neg()
			}
			return one(x), nil
		}
		return nil, nil
	})
	rounding := func(op func(d Decimal) *big.Int) funcImpl {
		return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
			v, ok, err := st.numInput(f, in)
			if err != nil || !ok {
				return nil, err
			}
			switch x := v.(type) {
			case int64:
				return one(x), nil
			case Decimal:
				return intOrEmpty(op(x)), nil
			}
			return nil, st.errAt(f, KindExecution, CodeType, "%s() needs an Integer or Decimal", f.name)
		}
	}
	reg("ceiling", 0, 0, rounding(Decimal.ceilInt))
	reg("floor", 0, 0, rounding(Decimal.floorInt))
	reg("truncate", 0, 0, rounding(Decimal.truncInt))
	reg("exp", 0, 0, floatFn(math.Exp))
	reg("ln", 0, 0, floatFn(math.Log))
	reg("sqrt", 0, 0, floatFn(math.Sqrt))
	reg("log", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		v, ok, err := st.numInput(f, in)
		if err != nil || !ok {
			return nil, err
		}
		b, ok, err := st.argItem(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		bv, _ := b.sys()
		x, ok1 := asDecimal(v)
		base, ok2 := asDecimal(bv)
		if !ok1 || !ok2 {
			return nil, st.errAt(f, KindExecution, CodeType, "log() needs numbers")
		}
		r, ok := decimalFromFloat(math.Log(x.Float64()) / math.Log(base.Float64()))
		if !ok {
			return nil, nil
		}
		return one(r), nil
	})
	reg("power", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		v, ok, err := st.numInput(f, in)
		if err != nil || !ok {
			return nil, err
		}
		e, ok, err := st.argItem(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		ev, _ := e.sys()
		if bi, isI := v.(int64); isI {
			if ei, isEI := ev.(int64); isEI && ei >= 0 && ei <= 1024 {
				return intOrEmpty(new(big.Int).Exp(big.NewInt(bi), big.NewInt(ei), nil)), nil
			}
		}
		x, ok1 := asDecimal(v)
		y, ok2 := asDecimal(ev)
		if !ok1 || !ok2 {
			return nil, st.errAt(f, KindExecution, CodeType, "power() needs numbers")
		}
		r, ok := decimalFromFloat(math.Pow(x.Float64(), y.Float64()))
		if !ok {
			return nil, nil
		}
		return one(r), nil
	})
	reg("round", 0, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		v, ok, err := st.numInput(f, in)
		if err != nil || !ok {
			return nil, err
		}
		p := int64(0)
		if len(f.args) == 1 {
			n, has, err := st.argInt(f, 0, sc)
			if err != nil || !has {
				return nil, err
			}
			if n < 0 || n > maxDecimalScale {
				return nil, st.errAt(f.args[0], KindExecution, CodeArgument, "round() precision out of range")
			}
			p = n
		}
		d, ok := asDecimal(v)
		if !ok {
			return nil, st.errAt(f, KindExecution, CodeType, "round() needs an Integer or Decimal")
		}
		return one(d.round(int32(p))), nil
	})
	boundary := func(high bool) funcImpl {
		return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
			it, ok, err := st.singleton(f, in)
			if err != nil || !ok {
				return nil, err
			}
			v, has := it.sys()
			if !has {
				return nil, nil
			}
			prec := int64(-1)
			if len(f.args) == 1 {
				n, has, err := st.argInt(f, 0, sc)
				if err != nil || !has {
					return nil, err
				}
				if n < 0 {
					return nil, nil
				}
				prec = n
			}
			switch x := v.(type) {
			case int64:
				r, ok := decimalBoundary(DecimalFromInt(x), prec, high)
				if !ok {
					return nil, nil
				}
				return one(r), nil
			case Decimal:
				r, ok := decimalBoundary(x, prec, high)
				if !ok {
					return nil, nil
				}
				return one(r), nil
			case Quantity:
				r, ok := decimalBoundary(x.Value, prec, high)
				if !ok {
					return nil, nil
				}
				x.Value = r
				return one(x), nil
			case DateTime:
				if prec < 0 {
					prec = int64(map[uint8]int{kindDate: 8, kindDateTime: 17, kindTime: 9}[x.kind])
				}
				r, ok := x.boundary(int(prec), high)
				if !ok {
					return nil, nil
				}
				return one(r), nil
			}
			return nil, st.errAt(f, KindExecution, CodeType, "%s() needs a number, quantity or date/time", f.name)
		}
	}
	reg("lowBoundary", 0, 1, boundary(false))
	reg("highBoundary", 0, 1, boundary(true))
	reg("precision", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		it, ok, err := st.singleton(f, in)
		if err != nil || !ok {
			return nil, err
		}
		v, _ := it.sys()
		switch x := v.(type) {
		case Decimal:
			return one(int64(x.scale)), nil
		case int64:
			return one(int64(0)), nil
		case DateTime:
			return one(int64(x.precisionDigits())), nil
		}
		return nil, nil
	})
}

// decimalBoundary returns the least (or greatest) value that d could stand
// for given its precision, expressed with prec digits (default 8).
func decimalBoundary(d Decimal, prec int64, high bool) (Decimal, bool) {
	if prec < 0 {
		prec = 8
	}
	if prec > 31 {
		return Decimal{}, false
	}
	half := Decimal{u: big.NewInt(5), scale: d.scale + 1}
	var b Decimal
	if high {
		b = d.add(half)
	} else {
		b = d.sub(half)
	}
	p := int32(prec)
	if p >= b.scale {
		return b.rescale(p), true
	}
	div := pow10(int(b.scale - p))
	q, m := new(big.Int).DivMod(b.unscaled(), div, new(big.Int))
	if high && m.Sign() != 0 {
		q.Add(q, bigOne)
	}
	return Decimal{u: q, scale: p}, true
}
