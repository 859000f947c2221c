package breakglass

import (
	"context"
	"strings"

	"phix/audit"
)

// AuditAlert returns an OnGrant hook that appends the grant's security
// alert to the audit log and waits until it is durable: action
// security-alert, alert break-glass (AuditEvent DCM 110113 "Security Alert"
// with subtype 110127 "Emergency Override Started"), the pseudonyms of the
// user and the patient, and the purpose. The justification never goes into
// the audit log (it may describe the patient); it stays in the review queue.
func AuditAlert(l *audit.Log, ps *audit.Pseudonymizer) func(context.Context, Grant) error {
	return func(ctx context.Context, g Grant) error {
		ev := audit.Event{Action: audit.ActionSecurityAlert, Alert: audit.AlertBreakGlass, Outcome: audit.OutcomeSuccess,
			Who:  audit.Who{User: ps.User(g.Subject), Role: strings.Join(g.Roles, ",")},
			What: audit.What{Patient: ps.Patient(strings.TrimPrefix(g.Patient, "Patient/"))},
			Why:  &audit.Why{Purpose: g.Purpose}}
		_, err := l.Append(context.WithoutCancel(ctx), ev)
		return err
	}
}
