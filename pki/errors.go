package pki

import (
	"errors"
	"fmt"
)

// Stable error codes. They never change meaning; callers and operators match on them.
const (
	CodeUntrusted     = "PKI-UNTRUSTED"      // does not chain to the network CA
	CodeExpired       = "PKI-EXPIRED"        // outside its validity period
	CodeRevoked       = "PKI-REVOKED"        // serial is on the CRL
	CodeUnpinned      = "PKI-UNPINNED"       // SPKI hash not pinned for the identity
	CodeWrongHospital = "PKI-WRONG-HOSPITAL" // identity is not the one expected
	CodeNoIdentity    = "PKI-NO-IDENTITY"    // no (or more than one) phix identity URI
	CodeNoCert        = "PKI-NO-CERT"        // peer sent no certificate
	CodeBadCert       = "PKI-BAD-CERT"       // certificate does not parse or has a bad profile
	CodeCRLStale      = "PKI-CRL-STALE"      // CRL past its next update: fail closed
	CodeCRLInvalid    = "PKI-CRL-INVALID"    // CRL missing, unparsable or not signed by the CA
	CodeBadRequest    = "PKI-BAD-REQUEST"    // invalid issuance or revocation request
	CodeUnknownSerial = "PKI-UNKNOWN-SERIAL" // serial was never issued by this CA
	CodeKeyFile       = "PKI-KEY-FILE"       // CA key file unreadable, wrong passphrase, bad mode
	CodeStore         = "PKI-STORE"          // issuance log failure
	CodeBadPin        = "PKI-BAD-PIN"        // malformed pin string
	CodeBadBinding    = "PKI-BAD-BINDING"    // identity binding malformed
	CodeBindingSig    = "PKI-BINDING-SIGNATURE"
	CodeBindingTime   = "PKI-BINDING-EXPIRED"
)

// Error is every error this package returns. Msg never holds key material;
// it may hold hospital ids, serials and pins, which are not PHI.
type Error struct {
	Code string
	Msg  string
	Err  error // underlying cause, if any (never key bytes)
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Msg, e.Err)
	}
	return e.Code + ": " + e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error by code, so errors.Is(err, &Error{Code: CodeRevoked}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == ""
}

// Code returns the stable code of err, or "" if it is not from this package.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func wrap(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}
