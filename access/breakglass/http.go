package breakglass

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"phix/access/policy"
	"phix/access/roles"
	"phix/errcode"
)

// Authenticator names the caller of a request (the node's bearer-token
// authenticator, adapted).
type Authenticator func(r *http.Request) (policy.Principal, error)

// Handler serves the break-glass API (mount it with http.StripPrefix):
//
//	POST /                open a grant: {"patient","purpose","justification","totp","minutes"}
//	GET  /reviews         the review queue (auditors)
//	POST /reviews/{id}    close a review: {"outcome": "appropriate"|"inappropriate"} (auditors)
//
// Errors are RFC 9457 problems whose type names the refusal code.
func (s *Service) Handler(auth Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := authenticated(w, r, auth)
		if !ok {
			return
		}
		var body struct {
			Patient       string `json:"patient"`
			Purpose       string `json:"purpose"`
			Justification string `json:"justification"`
			TOTP          string `json:"totp"`
			Minutes       int    `json:"minutes"`
		}
		if !decode(w, r, &body) {
			return
		}
		g, err := s.Open(r.Context(), Request{Principal: p, Patient: body.Patient, Purpose: body.Purpose,
			Justification: body.Justification, TOTPCode: body.TOTP, Duration: time.Duration(body.Minutes) * time.Minute})
		if err != nil {
			problem(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, grantJSON(g, false))
	})
	mux.HandleFunc("GET /reviews", func(w http.ResponseWriter, r *http.Request) {
		p, ok := authenticated(w, r, auth)
		if !ok {
			return
		}
		if !isAuditor(p) {
			problem(w, &Error{Code: CodeReviewer})
			return
		}
		gs, err := s.Pending(r.Context())
		if err != nil {
			problem(w, err)
			return
		}
		out := []map[string]any{}
		for _, g := range gs {
			out = append(out, grantJSON(g, true))
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /reviews/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := authenticated(w, r, auth)
		if !ok {
			return
		}
		var body struct {
			Outcome string `json:"outcome"`
		}
		if !decode(w, r, &body) {
			return
		}
		if err := s.Close(r.Context(), r.PathValue("id"), p, body.Outcome); err != nil {
			problem(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func isAuditor(p policy.Principal) bool { return slices.Contains(p.Roles, roles.Auditor) }

func authenticated(w http.ResponseWriter, r *http.Request, auth Authenticator) (policy.Principal, bool) {
	p, err := auth(r)
	if err != nil {
		writeProblem(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
		return policy.Principal{}, false
	}
	return p, true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, http.StatusBadRequest, "bad-request", "body must be a JSON object with the documented fields")
		return false
	}
	return true
}

// grantJSON renders a grant; the justification only for the review queue.
func grantJSON(g Grant, review bool) map[string]any {
	m := map[string]any{"id": g.ID, "patient": g.Patient, "purpose": g.Purpose,
		"start": g.Start.UTC().Format(time.RFC3339), "end": g.End.UTC().Format(time.RFC3339)}
	if review {
		m["subject"] = g.Subject
		m["justification"] = g.Justification
	}
	return m
}

var statusOf = map[Code]int{
	CodeNotEligible: http.StatusForbidden, CodeReviewer: http.StatusForbidden, CodeSecondFactor: http.StatusUnauthorized,
	CodeNotFound: http.StatusNotFound, CodeClosed: http.StatusConflict, CodeLocked: http.StatusTooManyRequests,
}

func problem(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		// A PHI-60xx error (PHI-6012: the alert could not be audited)
		// renders as such; anything else is a detail-free 500.
		pr := errcode.Problem(err)
		st, _ := pr["status"].(int)
		if st == 0 {
			st = http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(st)
		_ = json.NewEncoder(w).Encode(pr)
		return
	}
	st, ok := statusOf[e.Code]
	if !ok {
		st = http.StatusBadRequest
	}
	writeProblem(w, st, string(e.Code), e.Error())
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:phix:error:" + code, "title": code, "status": status, "detail": detail, "code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
