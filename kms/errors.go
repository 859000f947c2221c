package kms

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. Codes never change meaning;
// callers map them to HTTP statuses or exit codes.
type Code string

// The error codes of the kms. Messages carry key ids and versions only, never
// key material, PHI or tokens.
const (
	CodeNotFound          Code = "KMS-1001" // no such key, version, custodian or job
	CodeExists            Code = "KMS-1002" // the key, version or custodian already exists
	CodeBadInput          Code = "KMS-1003" // malformed argument
	CodeMalformedBlob     Code = "KMS-1004" // a wrapped blob that does not parse
	CodeUnknownSuite      Code = "KMS-1005" // suite id not known to this build
	CodeRetiredVersion    Code = "KMS-1006" // below min_decryption_version
	CodeDestroyed         Code = "KMS-1007" // the key or version was destroyed
	CodeUnwrapFailed      Code = "KMS-1008" // authentication failed: wrong key or tampered blob
	CodeWrongMasterKey    Code = "KMS-1009" // the master key does not open this keyring
	CodeApprovalRequired  Code = "KMS-1010" // dual control: not enough valid approvals
	CodeApprovalInvalid   Code = "KMS-1011" // bad signature, wrong operation, expired, replayed
	CodeNotExportable     Code = "KMS-1012" // the backend keeps this key inside (HSM)
	CodeBackend           Code = "KMS-1013" // the backend (HSM, storage) failed
	CodeUnsupported       Code = "KMS-1014" // the backend cannot do this with this suite
	CodeConflict          Code = "KMS-1015" // a concurrent change won; retry
	CodeWrongPurpose      Code = "KMS-1016" // the key exists but has another purpose
	CodeRotationRunning   Code = "KMS-1017" // another rotation of this KEK is unfinished
	CodeBackendMismatched Code = "KMS-1018" // the keyring was created with another backend
)

// Error is an error of the kms with a stable code.
type Error struct {
	Code Code
	Msg  string // safe to log: ids and versions only
	Err  error  // optional cause, itself free of secrets
}

// Error implements error: "kms: <message> (<code>)".
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("kms: %s (%s): %v", e.Msg, e.Code, e.Err)
	}
	return fmt.Sprintf("kms: %s (%s)", e.Msg, e.Code)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is match any *Error with the same code, so callers can test
// against the sentinel values below.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == "" && t.Err == nil
}

// Sentinels for errors.Is; each matches every error with its code.
var (
	ErrNotFound          = &Error{Code: CodeNotFound}
	ErrExists            = &Error{Code: CodeExists}
	ErrBadInput          = &Error{Code: CodeBadInput}
	ErrMalformedBlob     = &Error{Code: CodeMalformedBlob}
	ErrUnknownSuite      = &Error{Code: CodeUnknownSuite}
	ErrRetiredVersion    = &Error{Code: CodeRetiredVersion}
	ErrDestroyed         = &Error{Code: CodeDestroyed}
	ErrUnwrapFailed      = &Error{Code: CodeUnwrapFailed}
	ErrWrongMasterKey    = &Error{Code: CodeWrongMasterKey}
	ErrApprovalRequired  = &Error{Code: CodeApprovalRequired}
	ErrApprovalInvalid   = &Error{Code: CodeApprovalInvalid}
	ErrNotExportable     = &Error{Code: CodeNotExportable}
	ErrBackend           = &Error{Code: CodeBackend}
	ErrUnsupported       = &Error{Code: CodeUnsupported}
	ErrConflict          = &Error{Code: CodeConflict}
	ErrWrongPurpose      = &Error{Code: CodeWrongPurpose}
	ErrRotationRunning   = &Error{Code: CodeRotationRunning}
	ErrBackendMismatched = &Error{Code: CodeBackendMismatched}
)

// Errorf makes an *Error with code c. The message must hold no secret.
func Errorf(c Code, format string, args ...any) error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...)}
}

// Wrapf makes an *Error with code c around cause err (which must itself be
// free of secrets, as errors from the storage and HSM layers are).
func Wrapf(c Code, err error, format string, args ...any) error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf returns the code of the first *Error in err's chain, or "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
