package fhirserver

import (
	"errors"
	"net/http"
	"strings"

	"phix/audit"
)

// Role is the minimal role notion phix has until proper roles (SMART scopes,
// OIDC claims) arrive: it keeps the audit trail apart from clinical data
// (separation of duties).
type Role string

// The roles.
const (
	// RoleClinician reads and writes clinical data and may not read the audit log.
	RoleClinician Role = "clinician"
	// RoleAuditor reads the audit log (/audit/, AuditEvent) and nothing else.
	RoleAuditor Role = "auditor"
	// RoleNoData is a caller with neither clinical nor audit roles (the
	// administrators, a token without roles): no clinical data, no audit log.
	RoleNoData Role = "no-data"
)

// isAuditPath reports whether a request path belongs to the audit endpoints
// (the /audit/ API and the AuditEvent resource), which only auditors read.
func isAuditPath(p string) bool {
	return strings.HasPrefix(p, "/audit/") || p == BasePath+"/AuditEvent" || strings.HasPrefix(p, BasePath+"/AuditEvent/")
}

// AuditAuthorizer returns the audit.Authorizer for audit.Options: the
// request must carry a token auth accepts, and that token must have
// RoleAuditor. A clinician token gets 403.
func AuditAuthorizer(auth Authenticator) audit.Authorizer {
	return func(r *http.Request) error {
		p := PrincipalFrom(r.Context())
		if p == nil {
			var err error
			if p, err = auth.Authenticate(r); err != nil || p == nil {
				return ErrUnauthenticated
			}
		}
		if p.Role != RoleAuditor {
			return errForbiddenAudit
		}
		return nil
	}
}

var errForbiddenAudit = errors.Join(audit.ErrForbidden, errors.New("fhirserver: only the auditor role reads the audit log"))
