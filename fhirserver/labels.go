package fhirserver

import (
	"phix/fhir"
	"phix/store"
)

// SecurityLabels returns the meta.security labels of a stored version
// without decrypting anything: labels stay in clear in the stored form (they
// are inside the HMAC'd canonical form, not sealed), so an access policy can
// decide on them before the PHI layer opens the resource. A deletion has no
// labels. The body is parsed without validation; a body that does not parse
// is an error (a store fault, never client input).
func SecurityLabels(rec *store.Record) ([]fhir.SecurityLabel, error) {
	if rec == nil || rec.Deleted || len(rec.Body) == 0 {
		return nil, nil
	}
	obj, err := fhir.ParseObject(rec.Body, fhir.ParseOptions{})
	if err != nil {
		return nil, err
	}
	return fhir.SecurityLabels(&fhir.Resource{Type: rec.Type, ID: rec.ID, Object: obj}), nil
}
