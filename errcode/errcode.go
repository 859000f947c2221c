// Package errcode defines phix's PHI-60xx error table (seed 002, "Error
// Codes") once, with the HTTP status, retry and lockout semantics of each code,
// and renders an error as a FHIR OperationOutcome or an RFC 9457 problem.
//
// Details carried by an Error never hold PHI: callers put element paths,
// parameter names and counts there, never values.
package errcode

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Code is a PHI-60xx error code.
type Code string

// The eighteen codes of seed 002.
const (
	ConsentRequired               Code = "PHI-6001"
	ConsentDenied                 Code = "PHI-6002"
	ConsentExpired                Code = "PHI-6003"
	ConsentSignatureInvalid       Code = "PHI-6004"
	HMACVerificationFailed        Code = "PHI-6005"
	PHIEncryptionRequired         Code = "PHI-6006"
	FHIRValidationFailed          Code = "PHI-6007"
	DeidentificationFailed        Code = "PHI-6008"
	ReidentificationRiskHigh      Code = "PHI-6009"
	MinimumNecessaryViolated      Code = "PHI-6010"
	BreakGlassRequired            Code = "PHI-6011"
	AuditLogRequired              Code = "PHI-6012"
	UnsupportedFHIRVersion        Code = "PHI-6013"
	ResourceTypeNotAllowed        Code = "PHI-6014"
	PatientNotFound               Code = "PHI-6015"
	ConsentConflict               Code = "PHI-6016"
	ProviderNotAuthorized         Code = "PHI-6017"
	TreatmentRelationshipRequired Code = "PHI-6018"
)

// System is the coding system of the codes in OperationOutcome.issue.details.
const System = "urn:phix:error"

// LockoutDuration is the principal lockout after PHI-6004 and PHI-6005.
const LockoutDuration = 900 * time.Second

// Def is one row of the table.
type Def struct {
	Code        Code
	Name        string // seed 002's name, e.g. HMAC_VERIFICATION_FAILED
	Description string // seed 002's description
	Status      int    // HTTP status
	// Retries is how many times a client may retry the same request (0: never).
	Retries int
	// Lockout is how long the principal is locked out after this error; 0 for none.
	Lockout time.Duration
	// Immediate marks seed 002's "Immediate" lockout (PHI-6012): the request
	// is refused at once and the principal stays locked until an operator
	// clears it.
	Immediate bool
	// IssueCode is the FHIR IssueType for OperationOutcome.issue.code.
	IssueCode string
}

var table = []Def{
	{ConsentRequired, "CONSENT_REQUIRED", "Patient consent required for access", http.StatusForbidden, 0, 0, false, "forbidden"},
	{ConsentDenied, "CONSENT_DENIED", "Patient explicitly denied consent", http.StatusForbidden, 0, 0, false, "forbidden"},
	{ConsentExpired, "CONSENT_EXPIRED", "Patient consent has expired", http.StatusForbidden, 0, 0, false, "forbidden"},
	{ConsentSignatureInvalid, "CONSENT_SIGNATURE_INVALID", "ML-DSA-87 consent signature invalid", http.StatusUnauthorized, 0, LockoutDuration, false, "security"},
	{HMACVerificationFailed, "HMAC_VERIFICATION_FAILED", "FHIR resource HMAC invalid", http.StatusInternalServerError, 0, LockoutDuration, false, "security"},
	{PHIEncryptionRequired, "PHI_ENCRYPTION_REQUIRED", "PHI fields must be encrypted", http.StatusUnprocessableEntity, 0, 0, false, "security"},
	{FHIRValidationFailed, "FHIR_VALIDATION_FAILED", "FHIR resource validation failed", http.StatusBadRequest, 1, 0, false, "invalid"},
	{DeidentificationFailed, "DEIDENTIFICATION_FAILED", "De-identification process failed", http.StatusInternalServerError, 1, 0, false, "exception"},
	{ReidentificationRiskHigh, "REIDENTIFICATION_RISK_HIGH", "De-identified data has high re-id risk", http.StatusUnprocessableEntity, 0, 0, false, "business-rule"},
	{MinimumNecessaryViolated, "MINIMUM_NECESSARY_VIOLATED", "Access exceeds minimum necessary", http.StatusForbidden, 0, 0, false, "forbidden"},
	{BreakGlassRequired, "BREAK_GLASS_REQUIRED", "Emergency access protocol required", http.StatusForbidden, 0, 0, false, "forbidden"},
	{AuditLogRequired, "AUDIT_LOG_REQUIRED", "PHI access must be audited", http.StatusServiceUnavailable, 0, 0, true, "security"},
	{UnsupportedFHIRVersion, "UNSUPPORTED_FHIR_VERSION", "FHIR version not supported (require R4)", http.StatusNotAcceptable, 0, 0, false, "not-supported"},
	{ResourceTypeNotAllowed, "RESOURCE_TYPE_NOT_ALLOWED", "FHIR resource type not permitted", http.StatusForbidden, 0, 0, false, "not-supported"},
	{PatientNotFound, "PATIENT_NOT_FOUND", "Patient resource does not exist", http.StatusNotFound, 0, 0, false, "not-found"},
	{ConsentConflict, "CONSENT_CONFLICT", "Multiple conflicting consents", http.StatusConflict, 0, 0, false, "conflict"},
	{ProviderNotAuthorized, "PROVIDER_NOT_AUTHORIZED", "Healthcare provider not authorized", http.StatusForbidden, 0, 0, false, "forbidden"},
	{TreatmentRelationshipRequired, "TREATMENT_RELATIONSHIP_REQUIRED", "No established treatment relationship", http.StatusForbidden, 0, 0, false, "forbidden"},
}

var byCode = func() map[Code]*Def {
	m := make(map[Code]*Def, len(table))
	for i := range table {
		m[table[i].Code] = &table[i]
	}
	return m
}()

// All returns the table in code order. The slice is a copy.
func All() []Def { return append([]Def(nil), table...) }

// Lookup returns the definition of c.
func Lookup(c Code) (Def, bool) {
	d, ok := byCode[c]
	if !ok {
		return Def{}, false
	}
	return *d, true
}

// Error is a PHI-60xx error. Detail must never carry PHI.
type Error struct {
	Code   Code
	Detail string
	// Err is an optional cause, kept for errors.Is/As; it is not rendered to
	// clients and must not carry PHI either.
	Err error
}

// New returns an *Error with a formatted detail.
func New(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with cause err.
func Wrap(c Code, err error, format string, args ...any) *Error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...), Err: err}
}

func (e *Error) Error() string {
	d, _ := Lookup(e.Code)
	s := string(e.Code) + " " + d.Name
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same code, so errors.Is(err,
// &Error{Code: HMACVerificationFailed}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Detail == ""
}

// CodeOf returns the PHI code in err's chain, or "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Status returns the HTTP status for err: the code's, or 500.
func Status(err error) int {
	if d, ok := Lookup(CodeOf(err)); ok {
		return d.Status
	}
	return http.StatusInternalServerError
}

func describe(err error) (Def, string) {
	var e *Error
	if errors.As(err, &e) {
		if d, ok := Lookup(e.Code); ok {
			text := d.Description
			if e.Detail != "" {
				text += ": " + e.Detail
			}
			return d, text
		}
	}
	return Def{Status: http.StatusInternalServerError, IssueCode: "exception"}, "internal error"
}

// OperationOutcome renders err as a FHIR R4 OperationOutcome (a JSON object
// tree). Errors that carry no PHI code give a generic exception outcome whose
// text does not repeat err (which might not be PHI-safe).
func OperationOutcome(err error) map[string]any {
	d, text := describe(err)
	issue := map[string]any{
		"severity":    "error",
		"code":        d.IssueCode,
		"diagnostics": text,
	}
	if d.Code != "" {
		issue["details"] = map[string]any{
			"coding": []any{map[string]any{"system": System, "code": string(d.Code), "display": d.Name}},
			"text":   text,
		}
	}
	return map[string]any{"resourceType": "OperationOutcome", "issue": []any{issue}}
}

// Problem renders err as an RFC 9457 problem+json object. The type URI is
// urn:phix:error:<code>.
func Problem(err error) map[string]any {
	d, text := describe(err)
	p := map[string]any{"status": d.Status, "detail": text}
	if d.Code == "" {
		p["type"] = "about:blank"
		p["title"] = http.StatusText(d.Status)
		return p
	}
	p["type"] = System + ":" + string(d.Code)
	p["title"] = d.Name
	p["code"] = string(d.Code)
	p["retryable"] = d.Retries > 0
	if d.Retries > 0 {
		p["retries"] = d.Retries
	}
	return p
}
