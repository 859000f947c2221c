package suite

import (
	"crypto/hkdf"
	"fmt"
	"hash"
)

// kdf runs HKDF (RFC 5869) with the hash h and checks the output length first
// so callers get ErrKDF instead of an opaque library error.
func kdf(h func() hash.Hash, size int, secret, salt, info []byte, length int) ([]byte, error) {
	if length <= 0 || length > 255*size {
		return nil, fmt.Errorf("%w: %d bytes", ErrKDF, length)
	}
	return hkdf.Key(h, secret, salt, string(info), length)
}
