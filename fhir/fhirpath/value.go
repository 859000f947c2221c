package fhirpath

import (
	"encoding/json"
	"math/big"
	"strconv"
	"strings"

	"phix/fhir"
)

// Item is one element of a collection: either a node of a FHIR resource (a
// JSON value with its FHIR type and definition path) or a System value
// produced by the expression (bool, string, int64, Decimal, DateTime,
// Quantity).
type Item struct {
	v    any            // JSON value or System value
	typ  string         // FHIR type name; "" for System values
	path string         // definition path used to look up children
	ext  map[string]any // the "_name" sibling of a primitive: id and extension
	// Where a navigated node lives: par[key], or par[key][idx] when idx >=
	// 0. par is nil for roots and System values.
	par map[string]any
	key *string
	idx int
}

// Collection is the value of every FHIRPath expression: an ordered list of
// items.
type Collection []Item

// NewResourceItem wraps a parsed FHIR JSON object (with resourceType) as the
// root of an evaluation.
func NewResourceItem(obj map[string]any) Item {
	rt, _ := obj["resourceType"].(string)
	return Item{v: obj, typ: rt, path: rt}
}

// ResourceCollection is the input collection for evaluating against a
// parsed resource.
func ResourceCollection(r *fhir.Resource) Collection {
	if r == nil || r.Object == nil {
		return nil
	}
	return Collection{NewResourceItem(r.Object)}
}

// NewItem wraps a JSON value of the given FHIR type (for example a
// "HumanName" object or a "date" string).
func NewItem(v any, fhirType string) Item {
	if m, ok := v.(map[string]any); ok {
		if rt, ok := m["resourceType"].(string); ok {
			return Item{v: m, typ: rt, path: rt}
		}
	}
	return Item{v: v, typ: fhirType, path: fhirType}
}

// SystemItem wraps a Go value as a System value: bool, string, int, int64,
// Decimal, DateTime or Quantity. Other values give ok=false.
func SystemItem(v any) (Item, bool) {
	switch x := v.(type) {
	case bool, string, int64, Decimal, DateTime, Quantity:
		return sysItem(x), true
	case int:
		return sysItem(int64(x)), true
	}
	return Item{}, false
}

func sysItem(v any) Item { return Item{v: v} }

// Type returns the item's type name: the FHIR type ("HumanName", "code",
// "Patient") or the System type ("System.String").
func (it Item) Type() string {
	if it.typ != "" {
		return it.typ
	}
	return "System." + sysTypeName(it.v)
}

// Location reports where a node reached by navigation lives in the JSON
// tree: parent[key] when index is -1, else parent[key][index]. For a
// primitive with only extensions the value slot may be absent; its
// extensions are then under parent["_"+key]. ok is false for the evaluation
// root, for items built with NewItem and for System values.
func (it Item) Location() (parent map[string]any, key string, index int, ok bool) {
	if it.par == nil {
		return nil, "", 0, false
	}
	return it.par, *it.key, it.idx, true
}

// FHIRType is the FHIR type name, "" for System values.
func (it Item) FHIRType() string { return it.typ }

// DefinitionPath is the path the item's children are looked up under
// (fhir.LookupElement's parentPath): the type name for datatypes and
// resources ("HumanName", "Patient"), the element path for inline
// structures ("Patient.contact"); "" for System values. FHIRPath Patch uses
// it to learn whether a child element repeats.
func (it Item) DefinitionPath() string { return it.path }

// Raw returns the underlying JSON value for resource nodes (map[string]any,
// string, json.Number, bool, or nil for a primitive with only extensions)
// and the System value otherwise.
func (it Item) Raw() any { return it.v }

// Value returns the item as a System value when it is (or converts to) one:
// bool, string, int64, Decimal, DateTime or Quantity. Complex nodes return
// their JSON object.
func (it Item) Value() any {
	if v, ok := it.sys(); ok {
		return v
	}
	return it.v
}

func sysTypeName(v any) string {
	switch x := v.(type) {
	case bool:
		return "Boolean"
	case string:
		return "String"
	case int64:
		return "Integer"
	case Decimal:
		return "Decimal"
	case Quantity:
		return "Quantity"
	case DateTime:
		switch x.kind {
		case kindDate:
			return "Date"
		case kindTime:
			return "Time"
		}
		return "DateTime"
	}
	return "Any"
}

var fhirIntegerTypes = map[string]bool{"integer": true, "positiveInt": true, "unsignedInt": true, "integer64": true}

// sys converts a node to its System value. ok is false for complex nodes
// and for primitives with no value.
func (it Item) sys() (any, bool) {
	if it.typ == "" {
		return it.v, it.v != nil
	}
	switch x := it.v.(type) {
	case string:
		switch it.typ {
		case "date", "dateTime", "instant":
			if d, err := parseFHIRDateTime(x); err == nil {
				return d, true
			}
			return x, true
		case "time":
			if d, err := parseFHIRTime(x); err == nil {
				return d, true
			}
			return x, true
		case "decimal":
			if dec, err := parseDecimal(x); err == nil {
				return dec, true
			}
		case "integer", "positiveInt", "unsignedInt", "integer64":
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return n, true
			}
		}
		return it.v, true // already boxed: no allocation
	case json.Number:
		if fhirIntegerTypes[it.typ] || (it.typ != "decimal" && !strings.ContainsAny(string(x), ".eE")) {
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return n, true
			}
		}
		dec, err := parseDecimal(string(x))
		if err != nil {
			return nil, false
		}
		return dec, true
	case float64:
		dec, ok := decimalFromFloat(x)
		return dec, ok
	case bool:
		return it.v, true
	case map[string]any:
		if isQuantityType(it.typ) {
			return quantityFromJSON(x)
		}
	}
	return nil, false
}

func isQuantityType(t string) bool {
	switch t {
	case "Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity":
		return true
	}
	return false
}

// quantityFromJSON converts a FHIR Quantity to a System Quantity: the UCUM
// code when present, else the human unit.
func quantityFromJSON(m map[string]any) (any, bool) {
	var v Decimal
	switch n := m["value"].(type) {
	case json.Number:
		d, err := parseDecimal(string(n))
		if err != nil {
			return nil, false
		}
		v = d
	case float64:
		d, ok := decimalFromFloat(n)
		if !ok {
			return nil, false
		}
		v = d
	default:
		return nil, false
	}
	unit, _ := m["code"].(string)
	if unit == "" {
		unit, _ = m["unit"].(string)
	}
	if unit == "" {
		unit = "1"
	}
	return Quantity{Value: v, Unit: unit}, true
}

func (it Item) isComplex() bool {
	_, ok := it.v.(map[string]any)
	return ok
}

// asDecimal converts Integer or Decimal values.
func asDecimal(v any) (Decimal, bool) {
	switch x := v.(type) {
	case int64:
		return DecimalFromInt(x), true
	case Decimal:
		return x, true
	}
	return Decimal{}, false
}

// String renders a System value the way toString() does.
func sysToString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case int64:
		return strconv.FormatInt(x, 10), true
	case Decimal:
		return x.String(), true
	case DateTime:
		return x.String(), true
	case Quantity:
		return x.String(), true
	}
	return "", false
}

// bigFits32 is used for integer overflow checks.
func intResult(b *big.Int) (any, bool) {
	if b.IsInt64() {
		return b.Int64(), true
	}
	return nil, false
}
