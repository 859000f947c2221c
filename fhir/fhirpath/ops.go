package fhirpath

import (
	"math"
	"math/big"
)

// MaxStringLength bounds strings built by an expression (concatenation,
// join, replace), so repeated doubling cannot exhaust memory.
const MaxStringLength = 1 << 20

func (st *state) unary(x *unaryNode, v Collection) (Collection, error) {
	it, ok, err := st.singleton(x, v)
	if err != nil || !ok {
		return nil, err
	}
	if x.op == "+" {
		if sv, ok := it.sys(); ok {
			switch sv.(type) {
			case int64, Decimal, Quantity:
				return Collection{sysItem(sv)}, nil
			}
		}
		return nil, st.errAt(x, KindExecution, CodeType, "unary '+' needs a number or Quantity")
	}
	sv, _ := it.sys()
	switch n := sv.(type) {
	case int64:
		if n == math.MinInt64 {
			return nil, nil
		}
		return Collection{sysItem(-n)}, nil
	case Decimal:
		return Collection{sysItem(n.neg())}, nil
	case Quantity:
		n.Value = n.Value.neg()
		return Collection{sysItem(n)}, nil
	}
	return nil, st.errAt(x, KindExecution, CodeType, "unary '-' needs a number or Quantity")
}

func (st *state) binary(x *binaryNode, sc *scope) (Collection, error) {
	switch x.op {
	case "and", "or", "xor", "implies":
		return st.logic(x, sc)
	}
	left, err := st.eval(x.left, sc)
	if err != nil {
		return nil, err
	}
	right, err := st.eval(x.right, sc)
	if err != nil {
		return nil, err
	}
	switch x.op {
	case "|":
		out := make(Collection, 0, len(left)+len(right))
		out = append(out, left...)
		out = append(out, right...)
		return st.distinct(x, out)
	case "=", "!=":
		if len(left) == 0 || len(right) == 0 {
			return nil, nil
		}
		if len(left) != len(right) {
			return boolColl(x.op == "!="), nil
		}
		if err := st.step(x, len(left)); err != nil {
			return nil, err
		}
		for i := range left {
			eq, known := itemsEqual(left[i], right[i])
			if !known {
				return nil, nil
			}
			if !eq {
				return boolColl(x.op == "!="), nil
			}
		}
		return boolColl(x.op == "="), nil
	case "~", "!~":
		eq, err := st.equivalentColl(x, left, right)
		if err != nil {
			return nil, err
		}
		return boolColl(eq == (x.op == "~")), nil
	case "<", "<=", ">", ">=":
		a, ok1, err := st.singleton(x.left, left)
		if err != nil {
			return nil, err
		}
		b, ok2, err := st.singleton(x.right, right)
		if err != nil || !ok1 || !ok2 {
			return nil, err
		}
		c, known, ok := compareItems(a, b)
		if !ok {
			return nil, st.errAt(x, KindExecution, CodeType, "cannot compare %s with %s", a.Type(), b.Type())
		}
		if !known {
			return nil, nil
		}
		switch x.op {
		case "<":
			return boolColl(c < 0), nil
		case "<=":
			return boolColl(c <= 0), nil
		case ">":
			return boolColl(c > 0), nil
		}
		return boolColl(c >= 0), nil
	case "in", "contains":
		elem, coll := left, right
		if x.op == "contains" {
			elem, coll = right, left
		}
		it, ok, err := st.singleton(x, elem)
		if err != nil || !ok {
			return nil, err
		}
		if err := st.step(x, len(coll)); err != nil {
			return nil, err
		}
		for _, c := range coll {
			if eq, known := itemsEqual(it, c); known && eq {
				return boolColl(true), nil
			}
		}
		return boolColl(false), nil
	case "&":
		a, _, err := st.singleton(x.left, left)
		if err != nil {
			return nil, err
		}
		b, _, err := st.singleton(x.right, right)
		if err != nil {
			return nil, err
		}
		as, _ := stringOf(a)
		bs, _ := stringOf(b)
		if len(as)+len(bs) > MaxStringLength {
			return nil, st.errAt(x, KindLimit, CodeSizeLimit, "string longer than %d bytes", MaxStringLength)
		}
		return Collection{sysItem(as + bs)}, nil
	}
	return st.arith(x, left, right)
}

func stringOf(it Item) (string, bool) {
	v, ok := it.sys()
	if !ok {
		return "", false
	}
	return sysToString(v)
}

func (st *state) logic(x *binaryNode, sc *scope) (Collection, error) {
	left, err := st.eval(x.left, sc)
	if err != nil {
		return nil, err
	}
	l, lk, err := st.boolOf(x.left, left)
	if err != nil {
		return nil, err
	}
	// Short-circuit where the left side decides the result.
	switch {
	case x.op == "and" && lk && !l:
		return boolColl(false), nil
	case x.op == "or" && lk && l:
		return boolColl(true), nil
	case x.op == "implies" && lk && !l:
		return boolColl(true), nil
	}
	right, err := st.eval(x.right, sc)
	if err != nil {
		return nil, err
	}
	r, rk, err := st.boolOf(x.right, right)
	if err != nil {
		return nil, err
	}
	switch x.op {
	case "and":
		if rk && !r {
			return boolColl(false), nil
		}
		if lk && rk {
			return boolColl(true), nil
		}
	case "or":
		if rk && r {
			return boolColl(true), nil
		}
		if lk && rk {
			return boolColl(false), nil
		}
	case "xor":
		if lk && rk {
			return boolColl(l != r), nil
		}
	case "implies":
		if lk { // l is true here
			if rk {
				return boolColl(r), nil
			}
			return nil, nil
		}
		if rk && r {
			return boolColl(true), nil
		}
	}
	return nil, nil
}

func (st *state) equivalentColl(n node, left, right Collection) (bool, error) {
	if len(left) != len(right) {
		return false, nil
	}
	if err := st.step(n, len(left)*len(right)); err != nil {
		return false, err
	}
	used := make([]bool, len(right))
outer:
	for _, a := range left {
		for j, b := range right {
			if !used[j] && itemsEquivalent(a, b) {
				used[j] = true
				continue outer
			}
		}
		return false, nil
	}
	return true, nil
}

// distinct removes duplicates (by '=') keeping the first occurrence.
func (st *state) distinct(n node, c Collection) (Collection, error) {
	if len(c) < 2 {
		return c, nil
	}
	if err := st.step(n, len(c)*len(c)/2); err != nil {
		return nil, err
	}
	out := c[:0:0]
	for _, it := range c {
		dup := false
		for _, o := range out {
			if eq, known := itemsEqual(it, o); known && eq {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, it)
		}
	}
	return out, nil
}

func (st *state) arith(x *binaryNode, left, right Collection) (Collection, error) {
	a, ok1, err := st.singleton(x.left, left)
	if err != nil {
		return nil, err
	}
	b, ok2, err := st.singleton(x.right, right)
	if err != nil || !ok1 || !ok2 {
		return nil, err
	}
	av, aok := a.sys()
	bv, bok := b.sys()
	if !aok || !bok {
		return nil, nil
	}
	typeErr := func() (Collection, error) {
		return nil, st.errAt(x, KindExecution, CodeType, "operator '%s' cannot be applied to %s and %s", x.op, a.Type(), b.Type())
	}
	// date/time ± quantity
	if dt, ok := av.(DateTime); ok && (x.op == "+" || x.op == "-") {
		q, ok := bv.(Quantity)
		if !ok {
			return typeErr()
		}
		sign := 1
		if x.op == "-" {
			sign = -1
		}
		r, err := dt.addQuantity(q, sign)
		if err != nil {
			return nil, st.errAt(x, KindExecution, CodeType, "cannot add this quantity to a date/time: %v", err)
		}
		return Collection{sysItem(r)}, nil
	}
	if as, ok := av.(string); ok && x.op == "+" {
		bs, ok := bv.(string)
		if !ok {
			return typeErr()
		}
		if len(as)+len(bs) > MaxStringLength {
			return nil, st.errAt(x, KindLimit, CodeSizeLimit, "string longer than %d bytes", MaxStringLength)
		}
		return Collection{sysItem(as + bs)}, nil
	}
	// quantities (numbers combine with quantities as unit '1')
	aq, aIsQ := av.(Quantity)
	bq, bIsQ := bv.(Quantity)
	if aIsQ || bIsQ {
		if !aIsQ {
			d, ok := asDecimal(av)
			if !ok {
				return typeErr()
			}
			aq = Quantity{Value: d, Unit: "1"}
		}
		if !bIsQ {
			d, ok := asDecimal(bv)
			if !ok {
				return typeErr()
			}
			bq = Quantity{Value: d, Unit: "1"}
		}
		var r Quantity
		var err error
		switch x.op {
		case "+":
			r, err = addQuantity(aq, bq, 1)
		case "-":
			r, err = addQuantity(aq, bq, -1)
		case "*":
			r, err = mulQuantity(aq, bq, false)
		case "/":
			r, err = mulQuantity(aq, bq, true)
			if err == errDivZero {
				return nil, nil
			}
		default:
			return typeErr()
		}
		if err != nil {
			return nil, st.errAt(x, KindExecution, CodeType, "operator '%s': %v", x.op, err)
		}
		return Collection{sysItem(r)}, nil
	}
	ai, aIsI := av.(int64)
	bi, bIsI := bv.(int64)
	if aIsI && bIsI && x.op != "/" {
		r := new(big.Int)
		A, B := big.NewInt(ai), big.NewInt(bi)
		switch x.op {
		case "+":
			r.Add(A, B)
		case "-":
			r.Sub(A, B)
		case "*":
			r.Mul(A, B)
		case "div":
			if bi == 0 {
				return nil, nil
			}
			r.Quo(A, B)
		case "mod":
			if bi == 0 {
				return nil, nil
			}
			r.Rem(A, B)
		default:
			return typeErr()
		}
		v, ok := intResult(r)
		if !ok {
			return nil, st.errAt(x, KindExecution, CodeType, "integer overflow")
		}
		return Collection{sysItem(v)}, nil
	}
	ad, ok1 := asDecimal(av)
	bd, ok2 := asDecimal(bv)
	if !ok1 || !ok2 {
		return typeErr()
	}
	switch x.op {
	case "+":
		return Collection{sysItem(ad.add(bd))}, nil
	case "-":
		return Collection{sysItem(ad.sub(bd))}, nil
	case "*":
		return Collection{sysItem(ad.mul(bd))}, nil
	case "/":
		r, ok := ad.div(bd)
		if !ok {
			return nil, nil
		}
		return Collection{sysItem(r)}, nil
	case "div":
		if bd.Sign() == 0 {
			return nil, nil
		}
		q, _ := ad.div(bd)
		v, ok := intResult(q.truncInt())
		if !ok {
			return nil, nil
		}
		return Collection{sysItem(v)}, nil
	case "mod":
		if bd.Sign() == 0 {
			return nil, nil
		}
		q, _ := ad.div(bd)
		t := DecimalFromBig(q.truncInt())
		return Collection{sysItem(ad.sub(bd.mul(t)))}, nil
	}
	return typeErr()
}
