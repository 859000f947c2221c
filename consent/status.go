package consent

import (
	"context"
	"time"

	"phix/fhir"
)

// The consent-status values of the $consent-status response.
const (
	StatusGranted          = "granted"
	StatusDenied           = "denied"
	StatusConflict         = "conflict"
	StatusExpired          = "expired"
	StatusSignatureInvalid = "signature-invalid"
	StatusNone             = "none"
)

// StatusRequest reads seed 002's $consent-status Parameters: practitioner
// (valueReference) and action (valueCode). Both are required.
func StatusRequest(patient string, params *fhir.Resource) (Request, error) {
	bad := func(msg string) (Request, error) {
		return Request{}, &Error{Code: "invalid-parameters", Msg: msg}
	}
	if params == nil || params.Type != "Parameters" {
		return bad("the body must be a Parameters resource")
	}
	req := Request{Patient: patient}
	for _, p := range slice(params.Object["parameter"]) {
		m := mapOf(p)
		switch str(m["name"]) {
		case "practitioner":
			if req.Actor.Reference != "" {
				return bad("practitioner given twice")
			}
			req.Actor.Reference = str(mapOf(m["valueReference"])["reference"])
		case "action":
			if req.Action != "" {
				return bad("action given twice")
			}
			req.Action = str(m["valueCode"])
		}
	}
	if req.Actor.Reference == "" {
		return bad("practitioner (valueReference) is required")
	}
	switch req.Action {
	case "access", "collect", "use", "disclose", "correct":
	case "":
		return bad("action (valueCode) is required")
	default:
		return bad("action must be access, collect, use, disclose or correct")
	}
	return req, nil
}

// StatusResponse writes a decision as seed 002's $consent-status response:
// consent-status, then consent-reference, consent-signature-verified and
// expiry when a consent is involved.
func StatusResponse(d Decision) *fhir.Resource {
	status := StatusNone
	switch {
	case d.Effect == Permit:
		status = StatusGranted
	case d.Code == CodeConflict:
		status = StatusConflict
	case d.Effect == Deny:
		status = StatusDenied
	case d.Code == CodeExpired:
		status = StatusExpired
	case d.Code == CodeBadSignature:
		status = StatusSignatureInvalid
	}
	params := []any{map[string]any{"name": "consent-status", "valueCode": status}}
	if d.ConsentID != "" {
		params = append(params,
			map[string]any{"name": "consent-reference", "valueReference": map[string]any{"reference": "Consent/" + d.ConsentID}},
			map[string]any{"name": "consent-signature-verified", "valueBoolean": d.SignatureVerified})
		if !d.Expiry.IsZero() {
			params = append(params, map[string]any{"name": "expiry", "valueDateTime": d.Expiry.UTC().Truncate(time.Second).Format(time.RFC3339)})
		}
	}
	return &fhir.Resource{Type: "Parameters", Object: map[string]any{"resourceType": "Parameters", "parameter": params}}
}

// ConsentStatus answers POST Patient/[id]/$consent-status: patient is
// "Patient/[id]", params the request body.
func (e *Engine) ConsentStatus(ctx context.Context, patient string, params *fhir.Resource) (*fhir.Resource, error) {
	req, err := StatusRequest(patient, params)
	if err != nil {
		return nil, err
	}
	d, err := e.Decide(ctx, req)
	if err != nil {
		return nil, err
	}
	return StatusResponse(d), nil
}
