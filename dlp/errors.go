package dlp

import "fmt"

// Error codes: stable strings callers may switch on.
const (
	CodeInvalidJSON   = "dlp.invalid-json"
	CodeInvalidCSV    = "dlp.invalid-csv"
	CodeInvalidPolicy = "dlp.invalid-policy"
	CodeTooDeep       = "dlp.too-deep"
)

// Error is a scanning error with a stable code. Its message never quotes
// the input.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Msg) }

func errorf(code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}
