package fhirserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"phix/access/breakglass"
	"phix/access/roles"
	"phix/errcode"
)

// Paths of the break-glass endpoints.
const (
	pathBreakGlass = BasePath + "/$break-glass"
	pathReview     = BasePath + "/$break-glass-review"
)

// enforceRoutes adds the enforcement operations: $consent-status,
// $break-glass and the review queue.
func (s *Server) enforceRoutes(mux *http.ServeMux) {
	mux.HandleFunc(BasePath+"/Patient/{id}/$consent-status", s.methods(map[string]handlerFunc{"POST": s.handleConsentStatus}))
	mux.HandleFunc(pathBreakGlass, s.methods(map[string]handlerFunc{"POST": s.handleBreakGlass}))
	mux.HandleFunc(pathReview, s.methods(map[string]handlerFunc{"GET": s.handleReviewList, "POST": s.handleReviewClose}))
}

// isReviewPath is the one non-audit path the auditor role uses.
func isReviewPath(p string) bool { return p == pathReview }

// params is a decoded Parameters body of simple values.
type params map[string]string

// readParams reads a Parameters resource whose parameters carry one
// primitive value (or a reference) each; names outside allowed are refused.
func (s *Server) readParams(w http.ResponseWriter, r *http.Request, allowed ...string) (params, error) {
	data, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	var body struct {
		ResourceType string `json:"resourceType"`
		Parameter    []map[string]json.RawMessage
	}
	if err := json.Unmarshal(data, &body); err != nil || body.ResourceType != "Parameters" {
		return nil, errorf(CodeInvalidRequest, "the body must be a Parameters resource")
	}
	out := params{}
	for _, p := range body.Parameter {
		var name string
		if err := json.Unmarshal(p["name"], &name); err != nil || !slices.Contains(allowed, name) {
			return nil, errorf(CodeInvalidRequest, "unknown parameter (accepted: "+strings.Join(allowed, ", ")+")")
		}
		if _, dup := out[name]; dup {
			return nil, errorf(CodeInvalidRequest, "parameter "+name+" given twice")
		}
		var v string
		for k, raw := range p {
			switch {
			case k == "valueReference":
				var ref struct{ Reference string }
				if json.Unmarshal(raw, &ref) == nil {
					v = ref.Reference
				}
			case k == "valueInteger":
				var n json.Number
				if json.Unmarshal(raw, &n) == nil {
					v = n.String()
				}
			case strings.HasPrefix(k, "value"):
				_ = json.Unmarshal(raw, &v)
			}
		}
		out[name] = v
	}
	return out, nil
}

// handleBreakGlass is POST $break-glass: Parameters patient
// (valueReference Patient/<id>), purpose (valueCode ETREAT|BTG),
// justification (valueString, 20..2000 characters), duration (valueInteger
// minutes, default 60, at most 240) and the TOTP code (parameter totp or
// header X-TOTP). It answers 201 with the grant's id, start and end.
func (s *Server) handleBreakGlass(w http.ResponseWriter, r *http.Request) error {
	if s.enf == nil || s.enf.cfg.BreakGlass == nil {
		return errorf(CodeNotSupported, "break-glass is not configured")
	}
	rq, _ := r.Context().Value(enfReqKey).(*enfReq)
	if rq == nil {
		return errorf(CodeUnauthorized, "a valid bearer token is required")
	}
	p, err := s.readParams(w, r, "patient", "purpose", "justification", "duration", "totp")
	if err != nil {
		return err
	}
	req := breakglass.Request{Principal: rq.pp, Patient: p["patient"], Purpose: p["purpose"], Justification: p["justification"], TOTPCode: p["totp"]}
	if req.TOTPCode == "" {
		req.TOTPCode = rq.totp
	}
	if req.Purpose == "" {
		req.Purpose = rq.purpose
	}
	if d := p["duration"]; d != "" {
		n, err := time.ParseDuration(d + "m")
		if err != nil || n <= 0 {
			return errorf(CodeInvalidRequest, "duration must be a positive number of minutes")
		}
		req.Duration = n
	}
	g, err := s.enf.cfg.BreakGlass.Open(r.Context(), req)
	if err != nil {
		rq.note(false, []string{string(breakglass.CodeOf(err))}, "")
		return breakGlassError(err)
	}
	rq.note(true, []string{"break-glass-eligible"}, "")
	rq.mu.Lock()
	rq.purpose = g.Purpose
	rq.mu.Unlock()
	s.breakGlassAlert(r.Context(), w.Header().Get("X-Request-Id"), rq, strings.TrimPrefix(g.Patient, "Patient/"))
	writeJSON(w, http.StatusCreated, mustJSON(map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "grant", "valueString": g.ID},
		map[string]any{"name": "patient", "valueReference": map[string]any{"reference": g.Patient}},
		map[string]any{"name": "purpose", "valueCode": g.Purpose},
		map[string]any{"name": "start", "valueInstant": g.Start.UTC().Format(time.RFC3339)},
		map[string]any{"name": "end", "valueInstant": g.End.UTC().Format(time.RFC3339)},
	}}))
	return nil
}

// breakGlassError maps a refusal to its answer; the break-glass code is
// named in the diagnostics, never the request's values.
func breakGlassError(err error) error {
	var be *breakglass.Error
	if !errors.As(err, &be) {
		return storeError(err)
	}
	switch be.Code {
	case breakglass.CodePurpose:
		return denial(errcode.ProviderNotAuthorized, []string{string(be.Code)})
	case breakglass.CodeNotEligible:
		return denial(errcode.ProviderNotAuthorized, append([]string{string(be.Code)}, be.Reasons...))
	case breakglass.CodeSecondFactor:
		return errorf(CodeSecondFactor, string(be.Code)+": a valid, unused TOTP code is required")
	case breakglass.CodeNotFound:
		return errorf(CodeNotFound, string(be.Code))
	case breakglass.CodeReviewer:
		return errorf(CodeForbidden, string(be.Code)+": only an auditor other than the grantee reviews")
	case breakglass.CodeClosed:
		e := errorf(CodeVersionConflict, string(be.Code))
		e.Status = http.StatusConflict
		return e
	}
	return errorf(CodeInvalidRequest, string(be.Code))
}

// auditorOnly refuses callers without the auditor role.
func (s *Server) auditorOnly(r *http.Request) (*enfReq, error) {
	if s.enf == nil || s.enf.cfg.BreakGlass == nil {
		return nil, errorf(CodeNotSupported, "break-glass is not configured")
	}
	rq, _ := r.Context().Value(enfReqKey).(*enfReq)
	if rq == nil || !slices.Contains(rq.pp.Roles, roles.Auditor) {
		return nil, errorf(CodeForbidden, "only the auditor role reviews break-glass grants")
	}
	return rq, nil
}

// handleReviewList is GET $break-glass-review: the open grants, oldest
// first, for the auditor (with the justification the reviewer needs).
func (s *Server) handleReviewList(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.auditorOnly(r); err != nil {
		return err
	}
	gs, err := s.enf.cfg.BreakGlass.Pending(r.Context())
	if err != nil {
		return storeError(err)
	}
	var ps []any
	for _, g := range gs {
		ps = append(ps, map[string]any{"name": "grant", "part": []any{
			map[string]any{"name": "id", "valueString": g.ID},
			map[string]any{"name": "subject", "valueString": g.Subject},
			map[string]any{"name": "patient", "valueReference": map[string]any{"reference": g.Patient}},
			map[string]any{"name": "purpose", "valueCode": g.Purpose},
			map[string]any{"name": "justification", "valueString": g.Justification},
			map[string]any{"name": "start", "valueInstant": g.Start.UTC().Format(time.RFC3339)},
			map[string]any{"name": "end", "valueInstant": g.End.UTC().Format(time.RFC3339)},
		}})
	}
	out := map[string]any{"resourceType": "Parameters"}
	if len(ps) > 0 {
		out["parameter"] = ps
	}
	writeJSON(w, http.StatusOK, mustJSON(out))
	return nil
}

// handleReviewClose is POST $break-glass-review: Parameters grant
// (valueString id) and outcome (valueCode appropriate|inappropriate).
func (s *Server) handleReviewClose(w http.ResponseWriter, r *http.Request) error {
	rq, err := s.auditorOnly(r)
	if err != nil {
		return err
	}
	p, err := s.readParams(w, r, "grant", "outcome")
	if err != nil {
		return err
	}
	if err := s.enf.cfg.BreakGlass.Close(r.Context(), p["grant"], rq.pp, p["outcome"]); err != nil {
		return breakGlassError(err)
	}
	writeJSON(w, http.StatusOK, outcomeJSON([]Issue{{Severity: "information", Type: "informational", Diagnostics: "review recorded"}}))
	return nil
}

// requireSecondFactor checks the caller's TOTP code (X-TOTP) when the
// enforcement layer has a second factor: $erase approvals need it.
func (s *Server) requireSecondFactor(r *http.Request) error {
	if s.enf == nil || s.enf.cfg.SecondFactor == nil {
		return nil
	}
	rq, _ := r.Context().Value(enfReqKey).(*enfReq)
	if rq == nil || rq.totp == "" || s.enf.cfg.SecondFactor.Verify(r.Context(), rq.p.Subject, rq.totp) != nil {
		return errorf(CodeSecondFactor, "this operation needs a valid TOTP code in X-TOTP")
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("fhirserver: unencodable response")
	}
	return b
}
