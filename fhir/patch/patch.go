// Package patch applies patches to FHIR resources: JSON Patch (RFC 6902,
// with JSON Pointer, RFC 6901) and FHIRPath Patch (FHIR R4, a Parameters
// resource of "operation" parameters evaluated with package fhirpath).
//
// Both kinds are parsed once and applied to a copy of the resource's JSON
// object: a patch either applies completely or not at all, and the input is
// never modified. Errors are *Error with a stable Code. See docs/patch.md.
package patch

import (
	"encoding/json"
	"math/big"
)

// MaxOperations bounds the operations of one patch document.
const MaxOperations = 10000

// Patch is a parsed patch of either kind.
type Patch interface {
	// ApplyTo applies the patch to a copy of a resource's JSON object
	// (numbers as json.Number) and returns the patched copy. It refuses a
	// result whose resourceType or id differs from the input's
	// (CodeImmutable). resource is never modified.
	ApplyTo(resource map[string]any) (map[string]any, error)
	// Len is the number of operations.
	Len() int
}

// checkImmutable refuses a patched resource whose resourceType or id changed.
func checkImmutable(before, after map[string]any, op int) error {
	for _, k := range []string{"resourceType", "id"} {
		b, bok := before[k]
		a, aok := after[k]
		if bok != aok || !jsonEqual(a, b) {
			return errAt(CodeImmutable, op, k, k+" cannot be changed by a patch")
		}
	}
	return nil
}

// deepCopy copies a JSON tree (maps, slices, scalars).
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}

// jsonEqual is JSON value equality as RFC 6902 "test" defines it: numbers
// by numeric value, objects regardless of member order, arrays in order.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
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
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	if xn, ok := a.(json.Number); ok {
		if yn, ok := b.(json.Number); ok && xn == yn {
			return true
		}
	}
	xr, ok := number(a)
	if !ok {
		return false
	}
	yr, ok := number(b)
	return ok && xr.Cmp(yr) == 0
}

// number reads a JSON number (json.Number or a Go number) as a rational.
func number(v any) (*big.Rat, bool) {
	var s string
	switch n := v.(type) {
	case json.Number:
		s = string(n)
	case float64:
		r := new(big.Rat)
		if r.SetFloat64(n) == nil {
			return nil, false
		}
		return r, true
	case int:
		return new(big.Rat).SetInt64(int64(n)), true
	case int64:
		return new(big.Rat).SetInt64(n), true
	default:
		return nil, false
	}
	// Bound the exponent: big.Rat would happily allocate 10^1e9.
	if len(s) > 64 {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] == 'e' || s[i] == 'E') && len(s)-i > 5 {
			return nil, false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}
