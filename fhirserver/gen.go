package fhirserver

//go:generate go run ./internal/gensummary -in ../../shared/fhir-r4/profiles-resources.json -out summary_gen.go
