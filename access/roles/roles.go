// Package roles names phix's staff and machine roles and enforces
// separation of duties (MLPS 2.0 level 3, 8.1.4.x: the system, audit and
// security administrators are different people).
package roles

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Role is one role name as it appears in tokens and policies.
type Role string

// The roles.
const (
	Clinician     Role = "clinician"      // reads and writes the clinical data of patients in their care
	Nurse         Role = "nurse"          // reads clinical data, writes observations and care notes
	Registrar     Role = "registrar"      // registers patients and encounters (demographics, no clinical detail)
	Researcher    Role = "researcher"     // de-identified data only, purpose HRESCH
	Auditor       Role = "auditor"        // reads the audit log; no clinical data (audit administrator)
	SecurityAdmin Role = "security-admin" // policies, roles, allowlists; no clinical data
	SystemAdmin   Role = "system-admin"   // operates the node; no clinical data
	KeyCustodian  Role = "key-custodian"  // approves key operations (dual control)
)

// All lists every role.
var All = []Role{Clinician, Nurse, Registrar, Researcher, Auditor, SecurityAdmin, SystemAdmin, KeyCustodian}

// Exclusive are the administrator roles no one person may combine: the
// system administrator, the audit administrator (auditor) and the security
// administrator.
var Exclusive = []Role{SystemAdmin, Auditor, SecurityAdmin}

// Known reports whether r is a defined role.
func Known(r Role) bool { return slices.Contains(All, r) }

// Errors of Check; both are stable and name roles, never people.
var (
	ErrUnknownRole      = errors.New("roles: unknown role")
	ErrSeparationOfDuty = errors.New("roles: separation of duties: one person may hold only one of system-admin, auditor, security-admin")
)

// Check validates a person's (or token's) role set: every role known, no
// duplicates, and at most one of the Exclusive roles.
func Check(rs []Role) error {
	seen := map[Role]bool{}
	exclusive := 0
	for _, r := range rs {
		if !Known(r) {
			return fmt.Errorf("%w (%d characters)", ErrUnknownRole, len(r))
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		if slices.Contains(Exclusive, r) {
			exclusive++
		}
	}
	if exclusive > 1 {
		return ErrSeparationOfDuty
	}
	return nil
}

// Parse turns role names (from a token claim) into a checked role set.
func Parse(names []string) ([]Role, error) {
	out := make([]Role, 0, len(names))
	for _, n := range names {
		r := Role(strings.TrimSpace(n))
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if err := Check(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Assign adds role r to a person's roles, refusing a second Exclusive role.
func Assign(current []Role, r Role) ([]Role, error) {
	if slices.Contains(current, r) {
		return current, nil
	}
	next := append(slices.Clone(current), r)
	if err := Check(next); err != nil {
		return nil, err
	}
	return next, nil
}

// Strings returns the role names.
func Strings(rs []Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}
