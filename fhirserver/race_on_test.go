//go:build race

package fhirserver

// raceEnabled is true under -race, where the tests use smaller data.
const raceEnabled = true
