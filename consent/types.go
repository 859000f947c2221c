// Package consent evaluates FHIR R4 Consent resources: nested provisions
// with R4 semantics, several consents combined with deny overriding permit,
// conflicts surfaced as PHI-6016, and a consent counted only while its seed
// 002 consent-signature (ML-DSA-87 or SM2) verifies against a trusted key.
//
// Nothing this package returns (errors, reasons) carries PHI: references,
// codes and resource content never appear in messages.
package consent

import "time"

// Effect is the outcome of a decision.
type Effect string

// The three effects.
const (
	NotApplicable Effect = "not-applicable"
	Permit        Effect = "permit"
	Deny          Effect = "deny"
)

// Code is a stable phix error code from seed 002's PHI-60xx table.
type Code string

// The codes a consent decision can carry.
const (
	CodeNone         Code = ""
	CodeRequired     Code = "PHI-6001" // CONSENT_REQUIRED: no consent applies
	CodeDenied       Code = "PHI-6002" // CONSENT_DENIED
	CodeExpired      Code = "PHI-6003" // CONSENT_EXPIRED
	CodeBadSignature Code = "PHI-6004" // CONSENT_SIGNATURE_INVALID
	CodeConflict     Code = "PHI-6016" // CONSENT_CONFLICT
)

// Coding is a system and a code. An empty System matches any system.
type Coding struct {
	System string
	Code   string
}

// Actor is who asks.
type Actor struct {
	Reference string   // e.g. "Practitioner/123"
	Roles     []Coding // e.g. v3-ParticipationType PRCP, v3-RoleCode
}

// Resource describes the data asked for. Zero fields are unknown: a permit
// provision that restricts an unknown field does not match, a deny
// provision does (the restrictive reading).
type Resource struct {
	Type           string
	ID             string
	Profiles       []string
	SecurityLabels []Coding
	Codes          []Coding
	// Date is the clinically relevant time of the data (effective, issued,
	// recorded...); zero when unknown.
	Date time.Time
	// Authors are references to who authored the resource.
	Authors []string
	// References are the references the resource holds ("Patient/1").
	References []string
	// ReferencedBy are references of resources known to refer to this one
	// (filled by a caller with a reverse index; optional).
	ReferencedBy []string
}

// Fields names the parts of a Resource description that consents can
// consult beyond its type and id. A patient's consents need only some of
// them (Engine.Needs); a caller may describe just those, since a field no
// provision reads cannot change a decision.
type Fields uint8

// The fields of Resource that provisions read.
const (
	FieldLabels     Fields = 1 << iota // SecurityLabels
	FieldProfiles                      // Profiles (class rules naming a profile)
	FieldCodes                         // Codes
	FieldDate                          // Date (dataPeriod)
	FieldReferences                    // References, Authors, ReferencedBy (data rules)

	// AllFields is every field.
	AllFields = FieldLabels | FieldProfiles | FieldCodes | FieldDate | FieldReferences
)

// Request is one access to decide.
type Request struct {
	Patient  string // "Patient/123"
	Actor    Actor
	Action   string // consentaction: access, collect, use, disclose, correct
	Purpose  Coding // v3 PurposeOfUse, e.g. TREAT
	Resource Resource
	Time     time.Time // zero means now
}

// Obligation is something the enforcement point must do with a permitted
// resource.
type Obligation struct {
	// Kind is "redact": remove elements carrying SecurityLabel.
	Kind          string
	SecurityLabel Coding
}

// Ignored records a consent left out of a decision, for the audit trail.
type Ignored struct {
	ConsentID string
	Code      Code
	Reason    string
}

// Decision is the answer for one request.
type Decision struct {
	Effect        Effect
	ConsentID     string // the consent the decision rests on
	ProvisionPath string // e.g. "provision.provision[1]"
	Obligations   []Obligation
	Code          Code
	// Reason is a stable machine token followed by text; never PHI.
	Reason string
	// Conflicts names the consents in conflict with ConsentID (PHI-6016).
	Conflicts []string
	// Ignored lists consents not counted (bad signature, not active).
	Ignored []Ignored
	// Expiry is the end of the matched provision's period, zero if open.
	Expiry time.Time
	// SignatureVerified is true when the deciding consent's signature
	// verified (always, when ConsentID is set).
	SignatureVerified bool
}
