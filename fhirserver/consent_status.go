package fhirserver

import (
	"errors"
	"net/http"

	"phix/access/policy"
	"phix/access/scopes"
	"phix/consent"
	"phix/errcode"
	"phix/fhir"
	"phix/store"
)

// handleConsentStatus is POST Patient/[id]/$consent-status (seed 002's API
// contract): the body names a practitioner and an action; the answer is the
// consent decision for them as a Parameters resource. The caller needs the
// right to read the patient's consent data (scopes and policy).
func (s *Server) handleConsentStatus(w http.ResponseWriter, r *http.Request) error {
	if s.enf == nil {
		return errorf(CodeNotSupported, "$consent-status needs the enforcement layer")
	}
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		return err
	}
	rq, _ := r.Context().Value(enfReqKey).(*enfReq)
	if rq == nil {
		return errorf(CodeUnauthorized, "a valid bearer token is required")
	}
	ctx := r.Context()
	if _, err := s.enf.inner.Read(ctx, "Patient", id); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
		return errorf(Code(errcode.PatientNotFound), "no such patient")
	} else if err != nil {
		return storeError(err)
	}
	if p := rq.p; p.Scopes != nil && !p.Scopes.Allows(scopes.Read, "Consent", scopes.User) && !p.Scopes.Allows(scopes.Read, "Consent", scopes.System) &&
		!(p.Patient == id && p.Scopes.Allows(scopes.Read, "Consent", scopes.Patient)) {
		rq.note(false, []string{"smart-scope"}, "")
		return denial(errcode.MinimumNecessaryViolated, []string{"smart-scope"})
	}
	tr, err := s.enf.treatment(ctx, rq, id)
	if err != nil {
		return storeError(err)
	}
	d := s.enf.policyDecide(policy.Input{Principal: rq.pp, Action: policy.ActionRead,
		Resource: policy.Resource{Type: "Consent"}, Purpose: rq.purpose, Treatment: tr})
	if !d.Allow {
		rq.note(false, d.Reasons, "")
		return denial(d.Code, d.Reasons)
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	params, err := s.parseResource(data)
	if err != nil {
		return err
	}
	out, err := s.enf.consents.ConsentStatus(ctx, "Patient/"+id, params)
	if err != nil {
		var ce *consent.Error
		if errors.As(err, &ce) && ce.Code == "invalid-parameters" {
			return errorf(CodeInvalidRequest, "Parameters must hold practitioner (valueReference) and action (valueCode: access, collect, use, disclose, correct)")
		}
		return storeError(err)
	}
	rq.note(true, d.Reasons, "")
	body, err := fhir.Marshal(out)
	if err != nil {
		return errorf(CodeInternal, "internal error")
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
