package fhirserver

import (
	"errors"
	"testing"
)

// FuzzParseApprovals: the $erase body parser never panics, and answers
// either approvals (at least two, at most maxApprovals) or an *Error.
func FuzzParseApprovals(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"approval","valueString":"{\"custodian\":\"a\"}"},{"name":"approval","valueBase64Binary":"eyJjdXN0b2RpYW4iOiJiIn0="}]}`))
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"other"}]}`))
	f.Add([]byte(`{"resourceType":"Patient"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		as, err := parseApprovals(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not an API error: %v", err)
			}
			return
		}
		if len(as) < 2 || len(as) > maxApprovals {
			t.Fatalf("%d approvals accepted", len(as))
		}
	})
}
