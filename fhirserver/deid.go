package fhirserver

import (
	"context"
	"errors"
	"net/http"

	"phix/deid"
	"phix/fhir"
)

// DeidentifyDefinition names phix's $de-identify operation (seed 002's API
// contract; FHIR R4 defines no such operation).
const DeidentifyDefinition = "urn:phix:OperationDefinition/de-identify"

// Codes of $de-identify answers.
const (
	CodeDeidParam  Code = "DEID-PARAM-INVALID" // bad Parameters: 400
	CodeDeidFailed Code = "PHI-6008"           // DEIDENTIFICATION_FAILED: 500, without details
	CodeDeidRisk   Code = "PHI-6009"           // REIDENTIFICATION_RISK_HIGH: 422
)

func init() {
	errorTable[CodeDeidParam] = codeInfo{http.StatusBadRequest, "invalid", "invalid $de-identify parameters"}
	errorTable[CodeDeidFailed] = codeInfo{http.StatusInternalServerError, "exception", "DEIDENTIFICATION_FAILED"}
	errorTable[CodeDeidRisk] = codeInfo{http.StatusUnprocessableEntity, "business-rule", "REIDENTIFICATION_RISK_HIGH"}
}

// maxCompartment bounds the resources of one patient compartment
// de-identified in one request (per resource type).
const maxCompartment = 10000

// compartmentTypes are the Patient-compartment types gathered for
// scope=compartment, each searched by its "patient" parameter.
var compartmentTypes = []string{
	"AllergyIntolerance", "CarePlan", "CareTeam", "Claim", "Condition", "Device", "DiagnosticReport",
	"DocumentReference", "Encounter", "ExplanationOfBenefit", "Goal", "ImagingStudy", "Immunization",
	"MedicationAdministration", "MedicationRequest", "Observation", "Procedure", "ServiceRequest",
}

// handleDeidentify is $de-identify:
//
//	POST Patient/{id}/$de-identify   the Patient; with scope=compartment, the
//	                                 Patient and its compartment as a Bundle
//	POST /$de-identify               a Bundle carried in the "resource" parameter
func (s *Server) handleDeidentify(w http.ResponseWriter, r *http.Request) error {
	if s.deid == nil {
		return errorf(CodeNotSupported, "$de-identify is not configured on this server")
	}
	typ, id := r.PathValue("type"), r.PathValue("id")
	if typ != "" && typ != "Patient" {
		return errorf(CodeNotSupported, "$de-identify runs on Patient or on the system")
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	params, err := s.parseResource(data)
	if err != nil {
		return err
	}
	if params.Type != "Parameters" {
		return errorf(CodeDeidParam, "the body must be a Parameters resource")
	}
	scope, bundle, rest, err := splitDeidParams(params)
	if err != nil {
		return err
	}
	var targets []*fhir.Resource
	switch {
	case typ == "":
		if bundle == nil || scope != "" {
			return errorf(CodeDeidParam, "system $de-identify needs a Bundle in the 'resource' parameter and no scope")
		}
		// An invalid Bundle is refused as a write would be: de-identification
		// keeps codes and structure, so a bad code (a name typed as
		// Bundle.type) would otherwise come back out unchanged.
		if err := validate(r.Context(), bundle); err != nil {
			return err
		}
		targets = []*fhir.Resource{bundle}
	default:
		if bundle != nil {
			return errorf(CodeDeidParam, "Patient $de-identify takes no 'resource' parameter")
		}
		if err := checkID(id); err != nil {
			return err
		}
		if targets, err = s.deidTargets(r.Context(), id, scope); err != nil {
			return err
		}
	}
	out, err := s.deid.HandleOperation(r.Context(), rest, targets...)
	if err != nil {
		return deidError(err)
	}
	body, err := fhir.Marshal(out)
	if err != nil {
		return deidError(err)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// splitDeidParams takes out the server's own parameters (scope, resource)
// and leaves the rest for deid, which refuses unknown ones.
func splitDeidParams(p *fhir.Resource) (scope string, bundle *fhir.Resource, rest *fhir.Resource, err error) {
	list, _ := p.Object["parameter"].([]any)
	kept := make([]any, 0, len(list))
	for _, x := range list {
		m, _ := x.(map[string]any)
		switch m["name"] {
		case "scope":
			v, _ := m["valueCode"].(string)
			if v == "" {
				v, _ = m["valueString"].(string)
			}
			if scope != "" || (v != "resource" && v != "compartment") {
				return "", nil, nil, errorf(CodeDeidParam, "scope must be given once, as resource or compartment")
			}
			scope = v
		case "resource":
			ro, _ := m["resource"].(map[string]any)
			if bundle != nil || ro == nil || ro["resourceType"] != "Bundle" {
				return "", nil, nil, errorf(CodeDeidParam, "'resource' must be one Bundle")
			}
			bundle = &fhir.Resource{Type: "Bundle", Object: ro}
			if id, ok := ro["id"].(string); ok {
				bundle.ID = id
			}
		default:
			kept = append(kept, x)
		}
	}
	if scope == "resource" {
		scope = ""
	}
	obj := map[string]any{"resourceType": "Parameters", "parameter": kept}
	return scope, bundle, &fhir.Resource{Type: "Parameters", Object: obj}, nil
}

// deidTargets reads the Patient and, for scope=compartment, every resource
// of its compartment (one consistent snapshot is not guaranteed: each type
// is searched on its own).
func (s *Server) deidTargets(ctx context.Context, id, scope string) ([]*fhir.Resource, error) {
	rec, err := s.cfg.Store.Read(ctx, "Patient", id)
	if err != nil {
		return nil, storeError(err)
	}
	pat, err := s.parseResource(rec.Body)
	if err != nil {
		return nil, errorf(CodeInternal, "stored resource does not parse")
	}
	targets := []*fhir.Resource{pat}
	if scope != "compartment" {
		return targets, nil
	}
	for _, t := range compartmentTypes {
		recs, err := s.matchCondition(ctx, s.cfg.Store, t, "patient=Patient/"+id, maxCompartment)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Code() == CodeMultipleMatches {
				return nil, errorf(CodeDeidParam, "the patient compartment is too large for one request")
			}
			return nil, err
		}
		for _, rc := range recs {
			res, err := s.parseResource(rc.Body)
			if err != nil {
				return nil, errorf(CodeInternal, "stored resource does not parse")
			}
			targets = append(targets, res)
		}
	}
	return targets, nil
}

// deidError maps deid's codes; a processing failure is a 500 without detail.
func deidError(err error) error {
	de, ok := deid.AsError(err)
	if !ok {
		return errorf(CodeDeidFailed, "de-identification failed")
	}
	switch de.Code {
	case deid.CodeParamInvalid:
		// deid's parameter messages name parameters, never values.
		return errorf(CodeDeidParam, de.Msg)
	case deid.CodeRiskHigh:
		return errorf(CodeDeidRisk, "re-identification risk too high for this batch (k not met)")
	default:
		return errorf(CodeDeidFailed, "de-identification failed")
	}
}
