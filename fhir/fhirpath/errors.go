package fhirpath

import (
	"errors"
	"fmt"
)

// ErrorKind classifies an Error the way the FHIRPath specification does.
type ErrorKind int

// Error kinds.
const (
	// KindSyntax: the expression does not parse.
	KindSyntax ErrorKind = iota + 1
	// KindSemantic: the expression parses but is meaningless: unknown
	// function, wrong argument count, unknown type, or (in strict mode) an
	// element the model does not have.
	KindSemantic
	// KindExecution: evaluation failed on this input (e.g. a singleton was
	// expected and a collection was found).
	KindExecution
	// KindLimit: evaluation exceeded a configured limit (steps, collection
	// size, depth, cancellation).
	KindLimit
)

func (k ErrorKind) String() string {
	switch k {
	case KindSyntax:
		return "syntax"
	case KindSemantic:
		return "semantic"
	case KindExecution:
		return "execution"
	case KindLimit:
		return "limit"
	}
	return "unknown"
}

// Position is a place in the expression text. Offset is in bytes; Line and
// Column are 1-based, Column counted in bytes.
type Position struct {
	Offset int
	Line   int
	Column int
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Column) }

// Stable error codes carried by Error.Code.
const (
	CodeSyntax        = "fhirpath-syntax"
	CodeUnknownFunc   = "fhirpath-unknown-function"
	CodeArity         = "fhirpath-arity"
	CodeUnknownType   = "fhirpath-unknown-type"
	CodeUnknownVar    = "fhirpath-unknown-variable"
	CodeUnknownElem   = "fhirpath-unknown-element"
	CodeSingleton     = "fhirpath-singleton-expected"
	CodeType          = "fhirpath-type-mismatch"
	CodeArgument      = "fhirpath-invalid-argument"
	CodeUnsupported   = "fhirpath-unsupported"
	CodeResolve       = "fhirpath-resolve"
	CodeStepLimit     = "fhirpath-step-limit"
	CodeSizeLimit     = "fhirpath-size-limit"
	CodeDepthLimit    = "fhirpath-depth-limit"
	CodeCanceled      = "fhirpath-canceled"
	CodeTerminology   = "fhirpath-terminology"
	CodeExprTooLong   = "fhirpath-expression-too-long"
	CodeRegex         = "fhirpath-regex"
	CodeInvalidOutput = "fhirpath-invalid-output"
)

// Error is every error this package returns. Its message never contains
// resource content or literal values from the expression (they may be PHI):
// only positions, identifiers, type names and operator names.
type Error struct {
	Kind ErrorKind
	Code string
	Pos  Position
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("fhirpath %s error at %s: %s", e.Kind, e.Pos, e.Msg)
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func newErr(kind ErrorKind, code string, pos Position, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}
