package fhirpath

import (
	"strings"
	"sync"

	"phix/fhir"
)

// The FHIR type model comes from package fhir (tables generated from the R4
// StructureDefinitions). This file adapts it: child lookup with a cache,
// the type hierarchy, and a small fallback for names the tables lack.

type childKey struct{ parent, name string }

// childInfo is the resolved type of a child element.
type childInfo struct {
	ok       bool
	choice   bool     // a [x] element
	types    []string // candidate types of a choice element
	typ      string   // FHIR type ("" for choices with several types)
	path     string   // definition path for the child's own children
	concrete bool     // name was a concrete choice name such as valueQuantity
	extKey   string   // "_" + name: the primitive extension sibling
	// Stable key strings for Item locations, so items hold a pointer
	// rather than a copy: the element name, and each choice's concrete
	// name (types[i] → choiceKeys[i]).
	key        *string
	choiceKeys []string
}

var (
	childMu    sync.RWMutex
	childCache = map[childKey]childInfo{}
)

const maxChildCache = 1 << 16

func lookupChild(parent, name string) childInfo {
	k := childKey{parent, name}
	childMu.RLock()
	ci, hit := childCache[k]
	childMu.RUnlock()
	if hit {
		return ci
	}
	ci = computeChild(parent, name)
	ci.extKey = "_" + name
	ci.key = strPtr(name)
	if ci.choice {
		ci.choiceKeys = make([]string, len(ci.types))
		for i, t := range ci.types {
			ci.choiceKeys[i] = name + upperFirst(t)
		}
	}
	childMu.Lock()
	if len(childCache) < maxChildCache {
		childCache[k] = ci
	}
	childMu.Unlock()
	return ci
}

func strPtr(s string) *string { return &s }

func computeChild(parent, name string) childInfo {
	if parent == "" {
		return childInfo{}
	}
	info, concrete, ok := fhir.LookupElement(parent, name)
	if !ok || info == nil {
		return childInfo{}
	}
	ci := childInfo{ok: true, choice: info.Choice, types: info.Types}
	if info.Choice {
		base := info.Path[strings.LastIndexByte(info.Path, '.')+1:]
		base = strings.TrimSuffix(base, "[x]")
		ci.concrete = name != base
		if concrete != "" && ci.concrete {
			ci.typ, ci.path = normType(concrete), normType(concrete)
		}
		return ci
	}
	if info.ContentReference != "" {
		ci.typ = "BackboneElement"
		ci.path = strings.TrimPrefix(info.ContentReference, "#")
		return ci
	}
	switch {
	case concrete == "":
		if len(info.Types) > 0 {
			ci.typ = normType(info.Types[0])
			ci.path = ci.typ
		}
	case strings.Contains(concrete, "."):
		ci.typ = "BackboneElement"
		if len(info.Types) == 1 && info.Types[0] == "Element" {
			ci.typ = "Element"
		}
		ci.path = concrete
	default:
		ci.typ = normType(concrete)
		ci.path = ci.typ
	}
	return ci
}

// normType maps the FHIRPath System type URLs used for id, url and the like
// in the R4 definitions to FHIR primitive names.
func normType(t string) string {
	if strings.HasPrefix(t, "http://hl7.org/fhirpath/System.") {
		switch strings.TrimPrefix(t, "http://hl7.org/fhirpath/System.") {
		case "Boolean":
			return "boolean"
		case "Integer":
			return "integer"
		case "Decimal":
			return "decimal"
		case "Date":
			return "date"
		case "DateTime":
			return "dateTime"
		case "Time":
			return "time"
		}
		return "string"
	}
	return t
}

// fallbackBase covers the hierarchy when the generated tables are missing
// an entry.
var fallbackBase = map[string]string{
	"code": "string", "id": "string", "markdown": "string", "uri": "", "url": "uri", "canonical": "uri",
	"oid": "uri", "uuid": "uri", "positiveInt": "integer", "unsignedInt": "integer",
	"Age": "Quantity", "Duration": "Quantity", "Distance": "Quantity", "Count": "Quantity",
	"SimpleQuantity": "Quantity", "MoneyQuantity": "Quantity",
	"DomainResource": "Resource", "BackboneElement": "Element",
}

var fallbackKnown = map[string]bool{
	"boolean": true, "integer": true, "decimal": true, "string": true, "code": true, "id": true,
	"markdown": true, "uri": true, "url": true, "canonical": true, "oid": true, "uuid": true,
	"base64Binary": true, "instant": true, "date": true, "dateTime": true, "time": true,
	"positiveInt": true, "unsignedInt": true, "xhtml": true,
	"Element": true, "BackboneElement": true, "Resource": true, "DomainResource": true,
	"Quantity": true, "Age": true, "Duration": true, "Distance": true, "Count": true,
	"SimpleQuantity": true, "MoneyQuantity": true, "HumanName": true, "Coding": true,
	"CodeableConcept": true, "Reference": true, "Period": true, "Identifier": true,
	"Extension": true, "Meta": true, "Narrative": true, "Address": true, "ContactPoint": true,
	"Attachment": true, "Range": true, "Ratio": true, "SampledData": true, "Annotation": true,
	"Money": true, "Signature": true, "Timing": true, "Dosage": true,
}

func baseType(t string) string {
	if b := fhir.BaseType(t); b != "" {
		return b
	}
	if b, ok := fallbackBase[t]; ok {
		return b
	}
	if fhir.IsResourceType(t) && t != "Bundle" && t != "Parameters" && t != "Binary" {
		return "DomainResource"
	}
	if fhir.IsResourceType(t) {
		return "Resource"
	}
	if t != "Element" && t != "Resource" && t != "" && fhirKnown(t) && !fhir.IsPrimitiveType(t) && !fallbackKnown[t] {
		return "Element"
	}
	return ""
}

// isSubtype reports whether FHIR type t is base or derives from it.
func isSubtype(t, base string) bool {
	for i := 0; t != "" && i < 16; i++ {
		if t == base {
			return true
		}
		t = baseType(t)
	}
	return false
}

func fhirKnown(name string) bool {
	return fallbackKnown[name] || fhir.IsPrimitiveType(name) || fhir.IsResourceType(name) || fhir.BaseType(name) != ""
}

var systemTypes = map[string]bool{
	"Boolean": true, "String": true, "Integer": true, "Decimal": true, "Date": true,
	"DateTime": true, "Time": true, "Quantity": true, "Any": true, "Integer64": true,
}

func knownType(ts typeSpec) bool {
	switch ts.ns {
	case "System":
		// Unknown System types are legal and simply never match.
		return true
	case "FHIR":
		return fhirKnown(ts.name)
	case "":
		return systemTypes[ts.name] || fhirKnown(ts.name)
	}
	return false
}

// modelKnows reports whether the tables describe the definition path, so a
// failed child lookup means the element does not exist (strict mode).
func modelKnows(path string) bool {
	if path == "" {
		return false
	}
	root := path
	if i := strings.IndexByte(path, '.'); i >= 0 {
		root = path[:i]
	}
	return fhir.IsResourceType(root) || fhir.BaseType(root) != ""
}

// typeMatches implements "is": does the item have type ts or a subtype?
func typeMatches(it Item, ts typeSpec, exact bool) bool {
	if it.typ == "" {
		if ts.ns == "FHIR" {
			return false
		}
		n := sysTypeName(it.v)
		return n == ts.name || (ts.name == "Any")
	}
	if ts.ns == "System" {
		return false
	}
	if exact && fhir.IsPrimitiveType(it.typ) || exact && fallbackKnown[it.typ] && isLowerFirst(it.typ) {
		return it.typ == ts.name
	}
	return isSubtype(it.typ, ts.name)
}

func isLowerFirst(s string) bool { return s != "" && s[0] >= 'a' && s[0] <= 'z' }

func fhirIsResourceType(name string) bool { return fhir.IsResourceType(name) }
