package fhir

// The tables are generated from the FHIR R4 definitions in ../shared/fhir-r4
// (PHIX_SHARED overrides ../shared) and committed.
//go:generate go run ./internal/gen -out spec_r4.json.gz
