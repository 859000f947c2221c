package fhirserver

import (
	"net/http"

	"phix/fhir"
)

// handleEverything is Patient/{id}/$everything (FHIR R4): the Patient and
// the resources of its compartment (compartmentTypes) as a searchset
// Bundle. The edge gateway collects a patient's record with it. _type,
// _since and paging are not supported: the answer is the whole compartment
// up to maxCompartment resources per type.
func (s *Server) handleEverything(w http.ResponseWriter, r *http.Request) error {
	if r.PathValue("type") != "Patient" {
		return errorf(CodeInvalidRequest, "$everything runs on Patient only")
	}
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		return err
	}
	targets, err := s.deidTargets(r.Context(), id, "compartment")
	if err != nil {
		return err
	}
	entries := make([]any, 0, len(targets))
	for _, t := range targets {
		entries = append(entries, map[string]any{"fullUrl": s.cfg.BaseURL + "/" + t.Type + "/" + t.ID, "resource": t.Object,
			"search": map[string]any{"mode": "match"}})
	}
	b := &fhir.Resource{Type: "Bundle", Object: map[string]any{"resourceType": "Bundle", "type": "searchset",
		"total": len(entries), "entry": entries}}
	body, err := fhir.Marshal(b)
	if err != nil {
		return errorf(CodeInternal, "bundle does not marshal")
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
