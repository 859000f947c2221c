package fhirpath

import (
	"encoding/json"
	"strings"
	"unicode"
)

// coerce brings two System values to a common type for comparison:
// Integer→Decimal, and a FHIR string that holds a date/time when compared
// with a date/time (for nodes the model could not type).
func coerce(a, b any) (any, any) {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(Decimal); ok {
			return DecimalFromInt(x), y
		}
	case Decimal:
		if y, ok := b.(int64); ok {
			return x, DecimalFromInt(y)
		}
	case string:
		if y, ok := b.(DateTime); ok {
			if d, err := parseFHIRDateTime(x); err == nil && y.kind != kindTime {
				return d, y
			}
			if d, err := parseFHIRTime(x); err == nil && y.kind == kindTime {
				return d, y
			}
		}
	case DateTime:
		if y, ok := b.(string); ok {
			bb, aa := coerce(y, x)
			return aa, bb
		}
	}
	return a, b
}

// itemsEqual implements '=' for two items; known is false when the result
// is empty (e.g. dates of differing precision).
func itemsEqual(a, b Item) (eq, known bool) {
	am, aIsMap := a.v.(map[string]any)
	bm, bIsMap := b.v.(map[string]any)
	if aIsMap && bIsMap && !(isQuantityType(a.typ) && isQuantityType(b.typ)) {
		return jsonEqual(am, bm, false), true
	}
	av, aok := a.sys()
	bv, bok := b.sys()
	if !aok || !bok {
		return false, false
	}
	return valuesEqual(av, bv)
}

func valuesEqual(av, bv any) (bool, bool) {
	av, bv = coerce(av, bv)
	switch x := av.(type) {
	case bool:
		y, ok := bv.(bool)
		return ok && x == y, true
	case string:
		y, ok := bv.(string)
		return ok && x == y, true
	case int64:
		y, ok := bv.(int64)
		return ok && x == y, true
	case Decimal:
		y, ok := bv.(Decimal)
		return ok && x.Cmp(y) == 0, true
	case DateTime:
		y, ok := bv.(DateTime)
		if !ok || (x.kind == kindTime) != (y.kind == kindTime) {
			return false, true
		}
		c, known := compareDT(x, y)
		if !known {
			return false, false
		}
		return c == 0, true
	case Quantity:
		y, ok := bv.(Quantity)
		if !ok {
			return false, true
		}
		c, known := compareQuantity(x, y)
		if !known {
			return false, false
		}
		return c == 0, true
	}
	return false, true
}

// itemsEquivalent implements '~'.
func itemsEquivalent(a, b Item) bool {
	am, aIsMap := a.v.(map[string]any)
	bm, bIsMap := b.v.(map[string]any)
	if aIsMap && bIsMap && !(isQuantityType(a.typ) && isQuantityType(b.typ)) {
		return jsonEqual(am, bm, true)
	}
	av, aok := a.sys()
	bv, bok := b.sys()
	if !aok || !bok {
		return !aok && !bok
	}
	av, bv = coerce(av, bv)
	switch x := av.(type) {
	case string:
		y, ok := bv.(string)
		return ok && normalizeWS(x) == normalizeWS(y)
	case Decimal:
		y, ok := bv.(Decimal)
		return ok && decimalEquivalent(x, y)
	case DateTime:
		y, ok := bv.(DateTime)
		if !ok || effPrec(x) != effPrec(y) {
			return false
		}
		c, known := compareDT(x, y)
		return known && c == 0
	case Quantity:
		y, ok := bv.(Quantity)
		return ok && equivalentQuantity(x, y)
	}
	eq, known := valuesEqual(av, bv)
	return known && eq
}

func normalizeWS(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsSpace(r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteString(strings.ToLower(string(r)))
	}
	return b.String()
}

// jsonEqual compares two JSON trees member by member.
func jsonEqual(a, b any, equiv bool) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w, equiv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i], equiv) {
				return false
			}
		}
		return true
	case string:
		y, ok := b.(string)
		if equiv {
			return ok && normalizeWS(x) == normalizeWS(y)
		}
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		dx, e1 := parseDecimal(string(x))
		dy, e2 := parseDecimal(string(y))
		if e1 != nil || e2 != nil {
			return x == y
		}
		return dx.Cmp(dy) == 0
	default:
		return a == b
	}
}

// compareItems orders two items for <, <=, >, >=. known is false for an
// empty result; err is set when the types cannot be compared.
func compareItems(a, b Item) (c int, known bool, ok bool) {
	av, aok := a.sys()
	bv, bok := b.sys()
	if !aok || !bok {
		return 0, false, true
	}
	av, bv = coerce(av, bv)
	switch x := av.(type) {
	case int64:
		if y, isI := bv.(int64); isI {
			switch {
			case x < y:
				return -1, true, true
			case x > y:
				return 1, true, true
			}
			return 0, true, true
		}
	case Decimal:
		if y, isD := bv.(Decimal); isD {
			return x.Cmp(y), true, true
		}
	case string:
		if y, isS := bv.(string); isS {
			return strings.Compare(x, y), true, true
		}
	case DateTime:
		if y, isDT := bv.(DateTime); isDT {
			if (x.kind == kindTime) != (y.kind == kindTime) {
				return 0, false, false
			}
			c, known := compareDT(x, y)
			return c, known, true
		}
	case Quantity:
		if y, isQ := bv.(Quantity); isQ {
			c, known := compareQuantity(x, y)
			return c, known, true
		}
	}
	return 0, false, false
}
