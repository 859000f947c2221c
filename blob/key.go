package blob

import (
	"fmt"
	"strings"
)

// MaxKeyLen bounds a key's length in bytes.
const MaxKeyLen = 512

// ValidateKey checks a key: one or more "/"-separated segments of
// [A-Za-z0-9._-], no empty segment, no segment starting with "." (which
// rules out "." and ".." and keeps backend-private names out of reach), at
// most MaxKeyLen bytes. Anything else (absolute paths, backslashes, NUL,
// traversal, non-ASCII) is ErrInvalidKey. The error never echoes the key.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: length %d", ErrInvalidKey, len(key))
	}
	for i, seg := range strings.Split(key, "/") {
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%w: segment %d %s", ErrInvalidKey, i, err)
		}
	}
	return nil
}

// ValidatePrefix checks a listing prefix: "" or a valid key optionally
// followed by "/", or a valid key whose last segment is partial.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/"))
}

func validSegment(seg string) error {
	if seg == "" {
		return errString("is empty")
	}
	if seg[0] == '.' {
		return errString("starts with a dot")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return errString(fmt.Sprintf("has a disallowed byte at %d", i))
		}
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

// Key joins a transfer id and a file id into an object key, validating both.
func Key(transfer, file string) (string, error) {
	if err := validSegment(transfer); err != nil {
		return "", fmt.Errorf("%w: transfer id %s", ErrInvalidKey, err)
	}
	if err := validSegment(file); err != nil {
		return "", fmt.Errorf("%w: file id %s", ErrInvalidKey, err)
	}
	return transfer + "/" + file, nil
}
