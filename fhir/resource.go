// Package fhir is phix's FHIR R4 (4.0.1) resource model: resources are JSON
// object trees (numbers kept as json.Number so decimals keep their precision),
// parsed with limits, validated against tables generated from the
// specification, and written in a canonical form.
package fhir

// Resource is a parsed FHIR resource.
type Resource struct {
	Type string // resourceType
	ID   string // id, "" when absent
	// Object is the whole JSON object, resourceType and id included. Numbers
	// are json.Number; objects are map[string]any; arrays are []any.
	Object map[string]any
}
