package fhirserver

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"phix/audit"
	"phix/consent"
)

// noteDecision puts the request's access decisions into its audit event:
// effect deny when anything was refused, the policy ids (and the
// enforcement layer's check names) behind them, the purpose of use and the
// consent relied upon.
func (s *Server) noteDecision(ctx context.Context, ev *audit.Event) {
	rq, _ := ctx.Value(enfReqKey).(*enfReq)
	if rq == nil || rq.internal {
		return
	}
	rq.mu.Lock()
	defer rq.mu.Unlock()
	ev.Why = &audit.Why{Purpose: rq.purpose, ConsentID: rq.consentID}
	if rq.permits == 0 && rq.denies == 0 {
		return
	}
	d := &audit.Decision{Effect: "permit"}
	if rq.denies > 0 && rq.permits == 0 {
		d.Effect = "deny"
	}
	for r := range rq.reasons {
		d.Policies = append(d.Policies, r)
	}
	sort.Strings(d.Policies)
	ev.Decision = d
}

// afterRequest raises the security alert of a request that read data under
// a break-glass grant (DCM 110113 / 110127).
func (s *Server) afterRequest(r *http.Request, rid string) {
	rq, _ := r.Context().Value(enfReqKey).(*enfReq)
	if rq == nil || s.audit == nil {
		return
	}
	rq.mu.Lock()
	used := rq.bgUsed
	var patients []string
	for p, ok := range rq.bg {
		if ok {
			patients = append(patients, p)
		}
	}
	rq.mu.Unlock()
	if !used {
		return
	}
	sort.Strings(patients)
	for _, p := range patients {
		s.breakGlassAlert(r.Context(), rid, rq, p)
	}
}

// breakGlassAlert appends a security alert of kind break-glass for patient.
func (s *Server) breakGlassAlert(ctx context.Context, rid string, rq *enfReq, patient string) {
	if s.audit == nil {
		return
	}
	ev := audit.Event{Action: audit.ActionSecurityAlert, Alert: audit.AlertBreakGlass, Outcome: audit.OutcomeSuccess, RequestID: rid,
		Why: &audit.Why{Purpose: rq.purpose}}
	ev.Who.User = s.audit.ps.User(rq.p.Subject)
	ev.Who.Role = string(roleOf(rq.p))
	if validID(patient) {
		ev.What.ResourceType = "Patient"
		ev.What.Patient = s.audit.ps.Patient(patient)
	}
	ev.Decision = &audit.Decision{Effect: "permit", Policies: []string{"break-glass-access"}}
	s.audit.write(ctx, http.MethodPost, ev)
}

// auditEventIgnored is the event of a consent left out of decisions.
func auditEventIgnored(a *auditor, patient string, ig consent.Ignored) audit.Event {
	ev := audit.Event{Action: audit.ActionConsent, Outcome: audit.OutcomeMinorFailure}
	ev.What.ResourceType = "Consent"
	if validID(ig.ConsentID) {
		ev.What.ResourceID = a.ps.Resource("Consent", ig.ConsentID)
	}
	if id, ok := strings.CutPrefix(patient, "Patient/"); ok && validID(id) {
		ev.What.Patient = a.ps.Patient(id)
	}
	reason := "consent-ignored"
	if ig.Code != "" {
		reason += ":" + string(ig.Code)
	}
	ev.Decision = &audit.Decision{Effect: "deny", Policies: []string{reason}}
	return ev
}
