package patch

import (
	"errors"
	"strconv"
	"strings"

	"phix/fhir/fhirpath"
)

// Code is a stable patch error code. Clients may switch on it; it never
// changes meaning. docs/patch.md lists them.
type Code string

// Error codes.
const (
	// CodeInvalid: the patch document is malformed (not a JSON Patch array,
	// not a Parameters resource, a missing or unknown member, a wrong type).
	CodeInvalid Code = "patch-invalid"
	// CodeInvalidPath: a JSON Pointer or a FHIRPath expression does not
	// parse, or a FHIRPath selects something that is not an element of the
	// resource. Error.Pos has the position in the FHIRPath.
	CodeInvalidPath Code = "patch-invalid-path"
	// CodePathNotFound: the target of an operation does not exist.
	CodePathNotFound Code = "patch-path-not-found"
	// CodeNotSingle: a path that must select one element selected several
	// (or, for insert and move, elements of more than one list).
	CodeNotSingle Code = "patch-not-single"
	// CodeIndex: an array index or FHIRPath Patch index is out of range.
	CodeIndex Code = "patch-index-out-of-range"
	// CodeTestFailed: a JSON Patch "test" operation did not match.
	CodeTestFailed Code = "patch-test-failed"
	// CodeElementExists: FHIRPath Patch "add" of a non-repeating element
	// that already has a value (use replace).
	CodeElementExists Code = "patch-element-exists"
	// CodeUnknownElement: FHIRPath Patch names an element the target's type
	// does not have.
	CodeUnknownElement Code = "patch-unknown-element"
	// CodeInvalidValue: the value does not fit the element (wrong datatype).
	CodeInvalidValue Code = "patch-invalid-value"
	// CodeImmutable: the patch would change resourceType or id.
	CodeImmutable Code = "patch-immutable"
	// CodeEvaluation: evaluating a FHIRPath failed (a limit, a type error).
	CodeEvaluation Code = "patch-evaluation"
	// CodeTooLarge: more operations than MaxOperations.
	CodeTooLarge Code = "patch-too-large"
)

// Error is every error this package returns. Its message is fixed text:
// it never carries resource content or values from the patch (both may be
// PHI), only operation numbers, member names, positions and counts.
type Error struct {
	Code Code
	// Op is the 0-based index of the failing operation; -1 when the error
	// is about the document as a whole.
	Op int
	// Field is the member of the operation at fault: "path", "from",
	// "value", "name", "index", ... ("" when none in particular).
	Field string
	// Pos is the position in the operation's FHIRPath for FHIRPath errors,
	// nil otherwise.
	Pos *fhirpath.Position
	// FHIRPathCode is the fhirpath error code behind a CodeInvalidPath or
	// CodeEvaluation error ("fhirpath-syntax", ...), "" otherwise.
	FHIRPathCode string
	Msg          string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("patch ")
	b.WriteString(string(e.Code))
	if e.Op >= 0 {
		b.WriteString(": operation ")
		b.WriteString(strconv.Itoa(e.Op))
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	if e.Pos != nil {
		b.WriteString(" at line ")
		b.WriteString(strconv.Itoa(e.Pos.Line))
		b.WriteString(" column ")
		b.WriteString(strconv.Itoa(e.Pos.Column))
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func errAt(code Code, op int, field, msg string) *Error {
	return &Error{Code: code, Op: op, Field: field, Msg: msg}
}

// fromFHIRPath wraps a fhirpath error with its position. fhirpath messages
// hold no literals from the expression, so they may be passed on.
func fromFHIRPath(code Code, op int, field string, err error) *Error {
	e := &Error{Code: code, Op: op, Field: field, Msg: "FHIRPath error"}
	if fe, ok := fhirpath.AsError(err); ok {
		pos := fe.Pos
		e.Pos = &pos
		e.FHIRPathCode = fe.Code
		e.Msg = fe.Msg
		if fe.Kind == fhirpath.KindLimit {
			e.Code = CodeEvaluation
		}
	}
	return e
}
