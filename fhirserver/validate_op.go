package fhirserver

import (
	"net/http"

	"phix/fhir"
	"phix/fhir/invariant"
)

// handleValidate is $validate: the same checks as a write, answered with an
// OperationOutcome listing every issue (or one informational issue).
// A Parameters body with a "resource" parameter is unwrapped.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) error {
	typ, id := r.PathValue("type"), r.PathValue("id")
	if err := checkType(typ); err != nil {
		return err
	}
	if id != "" {
		if err := checkID(id); err != nil {
			return err
		}
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	res, err := s.parseResource(data)
	if err != nil {
		return err
	}
	if res.Type == "Parameters" && typ != "Parameters" {
		inner, ok := parametersResource(res.Object)
		if !ok {
			return errorf(CodeInvalidRequest, "Parameters must carry a 'resource' parameter")
		}
		res = inner
	}
	if res.Type != typ {
		return mismatch("resourceType does not match the URL", "resourceType")
	}
	if id != "" && res.ID != id {
		return mismatch("the body's id must equal the id in the URL", "id")
	}
	// R4 $validate answers 200 whether or not the resource is valid; 4xx
	// means validation could not run.
	// A resource with warnings only is valid: the success issue comes first
	// and the warnings (each with its constraint key) follow.
	issues, bad := invariant.Validate(r.Context(), res, invariant.Options{})
	if bad {
		writeJSON(w, http.StatusOK, outcomeJSON(convertIssues(issues)))
		return nil
	}
	out := []Issue{{Severity: "information", Type: "informational", Code: CodeValidationSuccess, Diagnostics: "no errors found"}}
	writeJSON(w, http.StatusOK, outcomeJSON(append(out, convertIssues(issues)...)))
	return nil
}

func parametersResource(obj map[string]any) (*fhir.Resource, bool) {
	params, _ := obj["parameter"].([]any)
	for _, p := range params {
		pm, _ := p.(map[string]any)
		if pm == nil || pm["name"] != "resource" {
			continue
		}
		ro, _ := pm["resource"].(map[string]any)
		rt, _ := ro["resourceType"].(string)
		if ro == nil || rt == "" {
			return nil, false
		}
		id, _ := ro["id"].(string)
		return &fhir.Resource{Type: rt, ID: id, Object: ro}, true
	}
	return nil, false
}
