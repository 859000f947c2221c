package suite

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash"

	"github.com/emmansun/gmsm/sm3"
)

// KeyIDSize is the number of hash bytes in a key id (32 hex characters).
const KeyIDSize = 16

// KeyID derives the id of a public key: the lowercase hex of the first 16
// bytes of H("phix-keyid" 0x00 algorithm 0x00 publicKey), where H is the hash
// of suite id (SHA-256 for intl and for keys outside the suites, SM3 for gm).
// Binding the algorithm keeps two encodings of the same bytes apart.
// Implementations of the key interfaces outside this package (HSM-backed
// keys) use it so ids agree.
func KeyID(id ID, algorithm string, publicKey []byte) string {
	var h hash.Hash
	if id == GM {
		h = sm3.New()
	} else {
		h = sha256.New()
	}
	h.Write([]byte("phix-keyid\x00"))
	h.Write([]byte(algorithm))
	h.Write([]byte{0})
	h.Write(publicKey)
	return hex.EncodeToString(h.Sum(nil)[:KeyIDSize])
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths. Use it for every MAC, tag, token or key comparison.
func Equal(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}

// EqualString is Equal for strings (tokens, hex-encoded MACs).
func EqualString(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Wipe overwrites b with zeros; call it on key buffers that are no longer
// needed. (Go may have copied the bytes elsewhere; this limits exposure, it
// does not guarantee erasure.)
func Wipe(b []byte) {
	clear(b)
}
