package seal

import "errors"

// Error is a sealed-file error with a stable code. Errors never carry key
// bytes or plaintext; they may carry public key ids and segment numbers.
type Error struct {
	// Code is stable and machine-readable, e.g. "SEAL_SEGMENT_AUTH".
	Code string
	msg  string
}

func (e *Error) Error() string { return "seal: " + e.msg }

// The errors. Wrapped errors add detail; compare with errors.Is.
var (
	ErrBadMagic        = &Error{"SEAL_BAD_MAGIC", "not a phix sealed file"}
	ErrVersion         = &Error{"SEAL_VERSION", "unsupported sealed-file format version"}
	ErrUnknownSuite    = &Error{"SEAL_UNKNOWN_SUITE", "unknown suite id"}
	ErrHeaderTruncated = &Error{"SEAL_HEADER_TRUNCATED", "header is truncated"}
	ErrHeaderLimit     = &Error{"SEAL_HEADER_LIMIT", "header field out of range"}
	ErrNoRecipient     = &Error{"SEAL_NO_KEY", "no key for any recipient of this file"}
	ErrKeyVersion      = &Error{"SEAL_KEY_VERSION", "recipient key found, but not the key version the file was sealed for"}
	ErrUnwrap          = &Error{"SEAL_UNWRAP", "the recipient key does not open its wrapped data key"}
	ErrKeyCommitment   = &Error{"SEAL_KEY_COMMITMENT", "data key does not match the header's key commitment"}
	ErrHeaderAuth      = &Error{"SEAL_HEADER_AUTH", "header authentication failed"}
	ErrSegmentAuth     = &Error{"SEAL_SEGMENT_AUTH", "segment authentication failed (corrupt, reordered, dropped, duplicated or wrong key)"}
	ErrTruncated       = &Error{"SEAL_TRUNCATED", "sealed stream is truncated"}
	ErrTrailingData    = &Error{"SEAL_TRAILING_DATA", "data after the last segment"}
	ErrTooLarge        = &Error{"SEAL_TOO_LARGE", "stream exceeds the maximum number of segments"}
	ErrOptions         = &Error{"SEAL_OPTIONS", "invalid seal options"}
	ErrClosed          = &Error{"SEAL_CLOSED", "writer is closed"}
)

// Code returns the stable code of err if it is (or wraps) a seal error, else "".
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
