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
	// ErrBadMagic: the input does not start with Magic.
	ErrBadMagic = &Error{"SEAL_BAD_MAGIC", "not a phix sealed file"}
	// ErrVersion: a format version this package does not read.
	ErrVersion = &Error{"SEAL_VERSION", "unsupported sealed-file format version"}
	// ErrUnknownSuite: the header names no known suite.
	ErrUnknownSuite = &Error{"SEAL_UNKNOWN_SUITE", "unknown suite id"}
	// ErrHeaderTruncated: the input ends inside the header.
	ErrHeaderTruncated = &Error{"SEAL_HEADER_TRUNCATED", "header is truncated"}
	// ErrHeaderLimit: a header field is outside the format's limits.
	ErrHeaderLimit = &Error{"SEAL_HEADER_LIMIT", "header field out of range"}
	// ErrNoRecipient: none of the given identities holds a key the file was sealed for.
	ErrNoRecipient = &Error{"SEAL_NO_KEY", "no key for any recipient of this file"}
	// ErrKeyVersion: the key id is known but not the version recorded in the file.
	ErrKeyVersion = &Error{"SEAL_KEY_VERSION", "recipient key found, but not the key version the file was sealed for"}
	// ErrUnwrap: the matching key does not open its stanza (wrong key, or a tampered header).
	ErrUnwrap = &Error{"SEAL_UNWRAP", "the recipient key does not open its wrapped data key"}
	// ErrKeyCommitment: the unwrapped data key is not the one the header commits to.
	ErrKeyCommitment = &Error{"SEAL_KEY_COMMITMENT", "data key does not match the header's key commitment"}
	// ErrHeaderAuth: the header MAC does not verify.
	ErrHeaderAuth = &Error{"SEAL_HEADER_AUTH", "header authentication failed"}
	// ErrSegmentAuth: a segment does not authenticate at its position.
	ErrSegmentAuth = &Error{"SEAL_SEGMENT_AUTH", "segment authentication failed (corrupt, reordered, dropped, duplicated or wrong key)"}
	// ErrTruncated: the stream ends before its last segment.
	ErrTruncated = &Error{"SEAL_TRUNCATED", "sealed stream is truncated"}
	// ErrTrailingData: bytes follow the last segment.
	ErrTrailingData = &Error{"SEAL_TRAILING_DATA", "data after the last segment"}
	// ErrTooLarge: more than 2^32 segments.
	ErrTooLarge = &Error{"SEAL_TOO_LARGE", "stream exceeds the maximum number of segments"}
	// ErrOptions: invalid Options or recipients given to NewWriter.
	ErrOptions = &Error{"SEAL_OPTIONS", "invalid seal options"}
	// ErrClosed: Write after Writer.Close, or Read after Reader.Close.
	ErrClosed = &Error{"SEAL_CLOSED", "stream is closed"}
)

// Code returns the stable code of err if it is (or wraps) a seal error, else "".
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
