package dicom

import "fmt"

// Stable codes of this package's errors.
const (
	// CodeDeidFailed is PHI-6008 DEIDENTIFICATION_FAILED: the file could not
	// be de-identified and was not written; it is never passed through raw.
	CodeDeidFailed = "PHI-6008"
	// CodeBadOption marks an unknown or conflicting profile option.
	CodeBadOption = "DICOM-OPTION-INVALID"
)

// Error is every error of this package. Its message holds a code, a stage
// and a cause class, never element values: names, ids and dates of the file
// do not appear in it.
type Error struct {
	Code  string
	Stage string // parse, charset, profile, write, quarantine, options
	Msg   string
	err   error
}

func (e *Error) Error() string {
	name := "DEIDENTIFICATION_FAILED"
	if e.Code == CodeBadOption {
		name = "OPTION_INVALID"
	}
	return fmt.Sprintf("%s %s: %s: %s", e.Code, name, e.Stage, e.Msg)
}

// Unwrap returns the underlying cause. Causes from the DICOM library can
// quote element values, so callers must log Error(), not the cause.
func (e *Error) Unwrap() error { return e.err }

func failed(stage, msg string, cause error) *Error {
	return &Error{Code: CodeDeidFailed, Stage: stage, Msg: msg, err: cause}
}
