package deid

import (
	"errors"
	"fmt"
)

// Stable error codes.
const (
	// CodeDeidFailed is PHI-6008 DEIDENTIFICATION_FAILED: a resource could not
	// be de-identified; it is never passed through.
	CodeDeidFailed = "PHI-6008"
	// CodeRiskHigh is PHI-6009 REIDENTIFICATION_RISK_HIGH: the batch is below
	// the configured k.
	CodeRiskHigh = "PHI-6009"
	// CodeRuleInvalid marks a profile that cannot be loaded.
	CodeRuleInvalid = "DEID-RULE-INVALID"
	// CodeReidDenied marks a refused re-identification.
	CodeReidDenied = "DEID-REID-DENIED"
	// CodeParamInvalid marks a bad $de-identify Parameters request (HTTP
	// 400): unknown or missing level, unknown or malformed parameter.
	CodeParamInvalid = "DEID-PARAM-INVALID"
)

var codeNames = map[string]string{
	CodeDeidFailed:   "DEIDENTIFICATION_FAILED",
	CodeRiskHigh:     "REIDENTIFICATION_RISK_HIGH",
	CodeRuleInvalid:  "RULE_INVALID",
	CodeReidDenied:   "REIDENTIFICATION_DENIED",
	CodeParamInvalid: "PARAMETERS_INVALID",
}

// Error is every error of this package. Its message never holds resource
// content: only codes, rule positions, element paths and resource types.
type Error struct {
	Code string // PHI-6008, PHI-6009, DEID-RULE-INVALID, DEID-REID-DENIED
	// Rule is the 0-based index of the offending rule and Line its line in
	// the profile file (1-based; 0 when unknown). Rule is -1 when the error
	// is not about one rule.
	Rule int
	Line int
	// Where names the place without values: an element path, a resource
	// type, a setting name.
	Where string
	Msg   string
	// Report is the risk report behind a PHI-6009.
	Report *RiskReport
	err    error
}

// Name is the symbolic name of Code.
func (e *Error) Name() string { return codeNames[e.Code] }

func (e *Error) Error() string {
	s := e.Code + " " + e.Name()
	if e.Rule >= 0 {
		s += fmt.Sprintf(": rule %d", e.Rule)
		if e.Line > 0 {
			s += fmt.Sprintf(" (line %d)", e.Line)
		}
	}
	if e.Where != "" {
		s += ": " + e.Where
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Unwrap returns the underlying error (its message is also value-free).
func (e *Error) Unwrap() error { return e.err }

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func failed(where, msg string) *Error {
	return &Error{Code: CodeDeidFailed, Rule: -1, Where: where, Msg: msg}
}

func ruleErr(idx, line int, msg string) *Error {
	return &Error{Code: CodeRuleInvalid, Rule: idx, Line: line, Msg: msg}
}
