package fhir

// Parse decodes one FHIR resource from strict JSON: invalid UTF-8, duplicate
// keys, trailing data, nesting deeper than MaxDepth, a non-object top level and
// a missing or non-string resourceType are errors. Numbers decode as
// json.Number. The error is a *ParseError.
func Parse(data []byte, opts ParseOptions) (*Resource, error) { return nil, errNotImplemented }

// Marshal writes r as compact JSON: resourceType first, then id, meta and the
// remaining keys in sorted order (recursively; nested resources likewise).
func Marshal(r *Resource) ([]byte, error) { return nil, errNotImplemented }

// Canonical writes the canonical form of seed 002 (the input of the resource
// HMAC): meta removed except meta.security, keys sorted, compact separators,
// non-ASCII escaped. See docs/validation.md.
func Canonical(r *Resource) ([]byte, error) { return nil, errNotImplemented }

// Validate checks r against the R4 StructureDefinitions and returns the
// issues found; nil when r is valid.
func Validate(r *Resource) []Issue { return nil }

// IsResourceType reports whether name is a concrete R4 resource type.
func IsResourceType(name string) bool { return false }

// ResourceTypes returns all 146 concrete R4 resource types, sorted.
func ResourceTypes() []string { return nil }

// LookupElement resolves a child element of a type or of a backbone path:
// LookupElement("Patient", "name"), LookupElement("HumanName", "family"),
// LookupElement("Observation", "valueQuantity") (choice resolved to
// Observation.value[x] with concrete type "Quantity"),
// LookupElement("Bundle.entry", "resource"). concreteType is the element's
// type when it has exactly one (or the choice made), the backbone path for
// inline structures, and "" when it has several.
func LookupElement(parentPath, name string) (info *ElementInfo, concreteType string, ok bool) {
	return nil, "", false
}

// IsPrimitiveType reports whether name is an R4 primitive datatype.
func IsPrimitiveType(name string) bool { return false }

// BaseType returns the type name specialises ("Age" -> "Quantity",
// "Patient" -> "DomainResource"), "" at the root or for unknown names.
func BaseType(name string) string { return "" }
