package fhirpath

import (
	"regexp"
	"strconv"
	"strings"
)

var (
	reInteger  = regexp.MustCompile(`^[+-]?[0-9]+$`)
	reDecimal  = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)
	reQuantity = regexp.MustCompile(`^([+-]?[0-9]+(?:\.[0-9]+)?)\s*(?:'([^']+)'|([a-z]+))?$`)
)

// conversion returns the converted System value or ok=false.
type conversion func(v any) (any, bool)

func convBoolean(v any) (any, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case int64:
		switch x {
		case 1:
			return true, true
		case 0:
			return false, true
		}
	case Decimal:
		switch {
		case x.Cmp(DecimalFromInt(1)) == 0:
			return true, true
		case x.Sign() == 0:
			return false, true
		}
	case string:
		switch strings.ToLower(x) {
		case "true", "t", "yes", "y", "1", "1.0":
			return true, true
		case "false", "f", "no", "n", "0", "0.0":
			return false, true
		}
	}
	return nil, false
}

func convInteger(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return int64(1), true
		}
		return int64(0), true
	case string:
		if reInteger.MatchString(x) {
			n, err := strconv.ParseInt(x, 10, 64)
			if err == nil && n >= -2147483648 && n <= 2147483647 {
				return n, true
			}
		}
	}
	return nil, false
}

func convDecimal(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return DecimalFromInt(x), true
	case Decimal:
		return x, true
	case bool:
		if x {
			return Decimal{u: bigOne, scale: 0}.rescale(1), true
		}
		return DecimalFromInt(0).rescale(1), true
	case string:
		if reDecimal.MatchString(x) {
			d, err := parseDecimal(x)
			return d, err == nil
		}
	}
	return nil, false
}

func convString(v any) (any, bool) {
	s, ok := sysToString(v)
	if !ok {
		return nil, false
	}
	return s, true
}

func convDate(v any) (any, bool) {
	switch x := v.(type) {
	case DateTime:
		if x.kind == kindTime {
			return nil, false
		}
		x.kind = kindDate
		if x.prec > precDay {
			x.prec = precDay
		}
		x.hasTZ = false
		x.hour, x.minute, x.second, x.millis = 0, 0, 0, 0
		return x, true
	case string:
		d, err := parseFHIRDateTime(x)
		if err != nil {
			return nil, false
		}
		return convDate(d)
	}
	return nil, false
}

func convDateTime(v any) (any, bool) {
	switch x := v.(type) {
	case DateTime:
		if x.kind == kindTime {
			return nil, false
		}
		x.kind = kindDateTime
		return x, true
	case string:
		d, err := parseFHIRDateTime(x)
		if err != nil {
			return nil, false
		}
		return convDateTime(d)
	}
	return nil, false
}

func convTime(v any) (any, bool) {
	switch x := v.(type) {
	case DateTime:
		if x.kind == kindTime {
			return x, true
		}
	case string:
		d, err := parseFHIRTime(x)
		if err != nil {
			return nil, false
		}
		return d, true
	}
	return nil, false
}

func convQuantity(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return Quantity{Value: DecimalFromInt(x), Unit: "1"}, true
	case Decimal:
		return Quantity{Value: x, Unit: "1"}, true
	case Quantity:
		return x, true
	case bool:
		d, _ := convDecimal(x)
		return Quantity{Value: d.(Decimal), Unit: "1"}, true
	case string:
		m := reQuantity.FindStringSubmatch(strings.TrimSpace(x))
		if m == nil {
			return nil, false
		}
		d, err := parseDecimal(m[1])
		if err != nil {
			return nil, false
		}
		switch {
		case m[2] != "":
			return Quantity{Value: d, Unit: m[2]}, true
		case m[3] != "":
			if _, ok := calendarUnits[m[3]]; !ok {
				return nil, false
			}
			return Quantity{Value: d, Unit: m[3], Calendar: true}, true
		}
		return Quantity{Value: d, Unit: "1"}, true
	}
	return nil, false
}

func registerConversion() {
	conv := func(c conversion, test bool) funcImpl {
		return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
			it, ok, err := st.singleton(f, in)
			if err != nil || !ok {
				return nil, err
			}
			v, ok := it.sys()
			var r any
			if ok {
				r, ok = c(v)
			}
			if test {
				return boolColl(ok), nil
			}
			if !ok {
				return nil, nil
			}
			return Collection{sysItem(r)}, nil
		}
	}
	for name, c := range map[string]conversion{
		"Boolean": convBoolean, "Integer": convInteger, "Decimal": convDecimal, "String": convString,
		"Date": convDate, "DateTime": convDateTime, "Time": convTime,
	} {
		reg("to"+name, 0, 0, conv(c, false))
		reg("convertsTo"+name, 0, 0, conv(c, true))
	}
	quantity := func(test bool) funcImpl {
		return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
			it, ok, err := st.singleton(f, in)
			if err != nil || !ok {
				return nil, err
			}
			v, ok := it.sys()
			var q any
			if ok {
				q, ok = convQuantity(v)
			}
			if ok && len(f.args) == 1 {
				unit, has, err := st.argString(f, 0, sc)
				if err != nil {
					return nil, err
				}
				if has {
					q, ok = convertUnit(q.(Quantity), unit)
				}
			}
			if test {
				return boolColl(ok), nil
			}
			if !ok {
				return nil, nil
			}
			return Collection{sysItem(q)}, nil
		}
	}
	reg("toQuantity", 0, 1, quantity(false))
	reg("convertsToQuantity", 0, 1, quantity(true))
	reg("iif", 2, 3, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		inner := sc
		if !f.term {
			if len(in) > 1 {
				return nil, st.errAt(f, KindExecution, CodeSingleton, "iif() called on %d items", len(in))
			}
			inner = &scope{this: in, total: sc.total, hasTotal: sc.hasTotal}
		}
		cond, err := st.eval(f.args[0], inner)
		if err != nil {
			return nil, err
		}
		if len(cond) > 1 {
			return nil, st.errAt(f.args[0], KindExecution, CodeSingleton, "iif() criterion is a collection")
		}
		b, known := false, false
		if len(cond) == 1 {
			v, _ := cond[0].sys()
			bv, isB := v.(bool)
			if !isB {
				if st.ec.Strict {
					return nil, st.errAt(f.args[0], KindSemantic, CodeType, "iif() criterion must be a Boolean")
				}
				bv = true
			}
			b, known = bv, true
		}
		if known && b {
			return st.eval(f.args[1], inner)
		}
		if len(f.args) > 2 {
			return st.eval(f.args[2], inner)
		}
		return nil, nil
	})
}

// convertUnit expresses q in unit when the units are compatible.
func convertUnit(q Quantity, unit string) (any, bool) {
	if q.Unit == unit {
		return q, true
	}
	target := Quantity{Value: DecimalFromInt(1), Unit: unit}
	if _, ok := calendarUnits[unit]; ok {
		target.Calendar = true
	}
	qv, qd, ok1 := q.canonical()
	tv, td, ok2 := target.canonical()
	if !ok1 || !ok2 || qd != td {
		return nil, false
	}
	r, ok := qv.div(tv)
	if !ok {
		return nil, false
	}
	return Quantity{Value: r, Unit: unit, Calendar: target.Calendar}, true
}
