package fhirserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"phix/errcode"
)

// ErrorSystem is the coding system of phix's stable error codes, carried in
// OperationOutcome.issue.details.coding.
const ErrorSystem = errcode.System

// Code is a stable phix error code. Clients may switch on it; it never changes
// meaning. docs/fhir-api.md lists them all.
type Code string

// The FHIR server's error codes. PHI-6007 and PHI-6013 come from the PHI-60xx
// table of seed 002; the others are this server's own.
const (
	CodeValidation         Code = "PHI-6007" // FHIR_VALIDATION_FAILED
	CodeUnsupportedVersion Code = "PHI-6013" // UNSUPPORTED_FHIR_VERSION
	CodeUnauthorized       Code = "unauthorized"
	CodeForbidden          Code = "forbidden"
	CodeInvalidJSON        Code = "invalid-json"
	CodeTooDeep            Code = "too-deep"
	CodeUnsupportedMedia   Code = "unsupported-media-type"
	CodeNotAcceptable      Code = "not-acceptable"
	CodeTooLarge           Code = "too-large"
	CodeInvalidID          Code = "invalid-id"
	CodeUnknownType        Code = "unknown-type"
	CodeNotFound           Code = "not-found"
	CodeGone               Code = "gone"
	CodeMethodNotAllowed   Code = "method-not-allowed"
	CodeNotSupported       Code = "not-supported"
	CodeVersionConflict    Code = "version-conflict"
	CodeConflict           Code = "conflict"
	CodeMultipleMatches    Code = "multiple-matches"
	CodeInvalidSearch      Code = "invalid-search"
	CodeInvalidRequest     Code = "invalid-request"
	CodeInvalidBundle      Code = "invalid-bundle"
	CodeInvalidReference   Code = "invalid-reference"
	CodeTooManyEntries     Code = "too-many-entries"
	CodeInternal           Code = "internal"
	CodeUnavailable        Code = "unavailable"
	CodeSearchWarning      Code = "search-warning"
	CodeValidationSuccess  Code = "ok"
)

// codeInfo is one row of the error table: the HTTP status and the FHIR
// IssueType that go with a code, and a fixed description. Messages never
// carry request data (query values and bodies may hold PHI).
type codeInfo struct {
	status    int
	issueType string
	display   string
}

// phiRow takes a PHI-60xx row from the project-wide table (package errcode,
// docs/errors.md), so a PHI code means the same status everywhere.
func phiRow(c errcode.Code) codeInfo {
	d, ok := errcode.Lookup(c)
	if !ok {
		panic("fhirserver: unknown PHI error code " + string(c))
	}
	return codeInfo{status: d.Status, issueType: d.IssueCode, display: d.Name}
}

// errorTable is the single table of the server's own error codes; PHI-60xx
// rows come from errcode.
var errorTable = map[Code]codeInfo{
	CodeValidation:         phiRow(errcode.FHIRValidationFailed),
	CodeUnsupportedVersion: phiRow(errcode.UnsupportedFHIRVersion),
	CodeUnauthorized:       {http.StatusUnauthorized, "login", "authentication required"},
	CodeForbidden:          {http.StatusForbidden, "forbidden", "not allowed for this role"},
	CodeInvalidJSON:        {http.StatusBadRequest, "structure", "malformed JSON"},
	CodeTooDeep:            {http.StatusBadRequest, "too-costly", "JSON nested too deeply"},
	CodeUnsupportedMedia:   {http.StatusUnsupportedMediaType, "not-supported", "unsupported content type"},
	CodeNotAcceptable:      {http.StatusNotAcceptable, "not-supported", "only JSON is supported"},
	CodeTooLarge:           {http.StatusRequestEntityTooLarge, "too-costly", "request body too large"},
	CodeInvalidID:          {http.StatusBadRequest, "value", "invalid resource id"},
	CodeUnknownType:        {http.StatusNotFound, "not-supported", "unknown resource type"},
	CodeNotFound:           {http.StatusNotFound, "not-found", "resource not found"},
	CodeGone:               {http.StatusGone, "deleted", "resource deleted"},
	CodeMethodNotAllowed:   {http.StatusMethodNotAllowed, "not-supported", "method not allowed"},
	CodeNotSupported:       {http.StatusNotImplemented, "not-supported", "not supported"},
	CodeVersionConflict:    {http.StatusPreconditionFailed, "conflict", "version conflict"},
	CodeConflict:           {http.StatusConflict, "conflict", "concurrent update; retry"},
	CodeMultipleMatches:    {http.StatusPreconditionFailed, "multiple-matches", "condition matched more than one resource"},
	CodeInvalidSearch:      {http.StatusBadRequest, "invalid", "invalid search"},
	CodeInvalidRequest:     {http.StatusBadRequest, "invalid", "invalid request"},
	CodeInvalidBundle:      {http.StatusBadRequest, "invalid", "invalid Bundle"},
	CodeInvalidReference:   {http.StatusBadRequest, "invalid", "unresolvable reference"},
	CodeTooManyEntries:     {http.StatusRequestEntityTooLarge, "too-costly", "too many Bundle entries"},
	CodeInternal:           {http.StatusInternalServerError, "exception", "internal error"},
	CodeUnavailable:        {http.StatusServiceUnavailable, "transient", "service unavailable"},
	CodeSearchWarning:      {http.StatusOK, "informational", "search parameter ignored"},
	CodeValidationSuccess:  {http.StatusOK, "informational", "validation passed"},
}

// Issue is one OperationOutcome issue.
type Issue struct {
	Severity    string   // fatal | error | warning | information
	Type        string   // FHIR IssueType; defaults to the code's
	Code        Code     // stable phix code
	Diagnostics string   // fixed text or the validator's message; never request values
	Expression  []string // FHIRPath locations
	Key         string   // constraint key of an invariant issue ("ele-1"), coded under ConstraintKeySystem
}

// ConstraintKeySystem is the coding system of a FHIRPath constraint key
// ("ele-1", "pat-1") in OperationOutcome.issue.details, next to the phix
// error code. FHIR defines no system for constraint keys, so phix names its own.
const ConstraintKeySystem = "urn:phix:constraint-key"

// Error is an API error: an HTTP status and the issues of the OperationOutcome
// that answers it.
type Error struct {
	Status int
	Issues []Issue
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return fmt.Sprintf("fhir error %d", e.Status)
	}
	i := e.Issues[0]
	return fmt.Sprintf("fhir error %d %s: %s", e.Status, i.Code, i.Diagnostics)
}

// Code returns the first issue's code.
func (e *Error) Code() Code {
	if len(e.Issues) == 0 {
		return CodeInternal
	}
	return e.Issues[0].Code
}

// errorf builds an Error with one issue and the code's status. The message
// must be a fixed text: callers never format request data into it.
func errorf(code Code, diagnostics string) *Error {
	info, ok := errorTable[code]
	if !ok {
		info = errorTable[CodeInternal]
	}
	return &Error{Status: info.status, Issues: []Issue{{Severity: "error", Code: code, Diagnostics: diagnostics}}}
}

// asError turns any error into an *Error; unknown errors become a detail-free
// 500 (their text may hold anything).
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if pe, ok := phiError(err); ok {
		return pe
	}
	return errorf(CodeInternal, "internal error")
}

// outcomeJSON renders issues as an OperationOutcome.
func outcomeJSON(issues []Issue) []byte {
	type coding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	type details struct {
		Coding []coding `json:"coding"`
	}
	type issue struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Details     *details `json:"details,omitempty"`
		Diagnostics string   `json:"diagnostics,omitempty"`
		Expression  []string `json:"expression,omitempty"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}{ResourceType: "OperationOutcome"}
	for _, i := range issues {
		info := errorTable[i.Code]
		typ := i.Type
		if typ == "" {
			typ = info.issueType
		}
		if typ == "" {
			typ = "processing"
		}
		sev := i.Severity
		if sev == "" {
			sev = "error"
		}
		oi := issue{Severity: sev, Code: typ, Diagnostics: i.Diagnostics, Expression: i.Expression}
		if i.Code != "" {
			oi.Details = &details{Coding: []coding{{System: ErrorSystem, Code: string(i.Code), Display: info.display}}}
		}
		if i.Key != "" {
			if oi.Details == nil {
				oi.Details = &details{}
			}
			oi.Details.Coding = append(oi.Details.Coding, coding{System: ConstraintKeySystem, Code: i.Key})
		}
		out.Issue = append(out.Issue, oi)
	}
	if len(out.Issue) == 0 {
		out.Issue = []issue{{Severity: "information", Code: "informational", Diagnostics: "ok"}}
	}
	b, _ := json.Marshal(out)
	return b
}

// writeError answers with the OperationOutcome of err.
func writeError(w http.ResponseWriter, err error) {
	e := asError(err)
	if sw, ok := w.(*statusWriter); ok {
		sw.code = e.Code()
		// The store promises content-free error texts ("store: commit:
		// database error SQLSTATE 40001"): operators get the cause of a 500.
		var ie *internalError
		if errors.As(err, &ie) && ie.cause != nil {
			sw.cause = ie.cause.Error()
		}
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="phix"`)
	}
	writeJSON(w, e.Status, outcomeJSON(e.Issues))
}

// writeJSON writes a FHIR JSON body.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", contentTypeFHIR)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

const contentTypeFHIR = "application/fhir+json; charset=utf-8"
