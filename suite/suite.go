// Package suite names the two algorithm suites of phix, "intl" and "gm", and
// gives the rest of the code every primitive it needs (hash, MAC, KDF, AEAD,
// signature, key wrap) without naming an algorithm. Code asks a Suite for a
// capability; which algorithm answers is decided here and recorded on the wire
// by the suite id, so that keys rotate and suites coexist.
//
//	suite  hash     MAC            KDF         AEAD         signature   key wrap
//	intl   SHA-256  HMAC-SHA3-384  HKDF-SHA256 AES-256-GCM  ML-DSA-87   HPKE ML-KEM-768+X25519
//	gm     SM3      HMAC-SM3       HKDF-SM3    SM4-GCM      SM2 (uid)   SM2 encryption + SM4-GCM
//
// Ed25519 is offered beside the intl suite for lightweight, TLS-adjacent
// signatures (GenerateEd25519, ParseEd25519SigningKey, ParseEd25519VerifyKey).
//
// No error returned by this package carries key material or message content.
package suite

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"hash"
)

// ID names a suite. Its string form is used in JSON and configuration; its
// one-byte form (Wire) is used in binary formats.
type ID string

// The suites.
const (
	Intl ID = "intl" // international: SHA-256, HMAC-SHA3-384, AES-256-GCM, ML-DSA-87, HPKE hybrid
	GM   ID = "gm"   // Chinese state cryptography: SM3, HMAC-SM3, SM4-GCM, SM2
)

// Wire ids of the suites in binary formats. 0 is never valid, so a zeroed
// header cannot name a suite by accident.
const (
	WireIntl byte = 0x01
	WireGM   byte = 0x02
)

// Errors. They are stable (compare with errors.Is) and never carry key bytes.
var (
	// ErrUnknownSuite: the suite id or wire id names no suite.
	ErrUnknownSuite = errors.New("suite: unknown suite")
	// ErrInvalidKey: key bytes do not parse as a key of the expected kind and suite.
	ErrInvalidKey = errors.New("suite: invalid key")
	// ErrKeySize: a symmetric key has the wrong length for the suite.
	ErrKeySize = errors.New("suite: wrong key size")
	// ErrUnwrap: a wrapped key does not open under the given private key and
	// associated data (wrong recipient, tampered, or wrong suite).
	ErrUnwrap = errors.New("suite: cannot unwrap key")
	// ErrWrongSuite: a key of one suite was given to another suite.
	ErrWrongSuite = errors.New("suite: key belongs to another suite")
	// ErrKDF: the KDF was asked for an impossible output length.
	ErrKDF = errors.New("suite: invalid KDF output length")
)

// Suite is one coherent set of algorithms. Implementations are safe for
// concurrent use; the objects they return (hash.Hash, cipher.AEAD) are not.
type Suite interface {
	// ID returns the suite's name.
	ID() ID
	// Wire returns the suite's one-byte id for binary formats.
	Wire() byte

	// NewHash returns the suite hash: SHA-256 (intl) or SM3 (gm). Both are 32 bytes.
	NewHash() hash.Hash
	// HashSize is the output size of NewHash.
	HashSize() int
	// NewMAC returns the suite MAC keyed with key: HMAC-SHA3-384 (48 bytes,
	// intl) or HMAC-SM3 (32 bytes, gm). Compare tags with Equal.
	NewMAC(key []byte) hash.Hash
	// MACSize is the output size of NewMAC.
	MACSize() int
	// KDF is HKDF (RFC 5869) over the suite hash: HKDF-SHA256 (intl) or
	// HKDF-SM3 (gm). length must be in 1..255*HashSize.
	KDF(secret, salt, info []byte, length int) ([]byte, error)

	// AEADKeySize is the key size of NewAEAD: 32 (AES-256) or 16 (SM4).
	AEADKeySize() int
	// NewAEAD returns AES-256-GCM (intl) or SM4-GCM (gm), with 12-byte nonces
	// and 16-byte tags. A key of the wrong size gives ErrKeySize.
	NewAEAD(key []byte) (cipher.AEAD, error)

	// SignatureAlgorithm names the suite signature: "ML-DSA-87" or "SM2".
	SignatureAlgorithm() string
	// GenerateSigningKey makes a new signing key: ML-DSA-87 (intl) or SM2
	// with the suite's user id per GB/T 32918 (gm).
	GenerateSigningKey() (SigningKey, error)
	// ParseSigningKey reads the output of SigningKey.Bytes.
	ParseSigningKey(b []byte) (SigningKey, error)
	// ParseVerifyKey reads the output of VerifyKey.Bytes.
	ParseVerifyKey(b []byte) (VerifyKey, error)

	// WrapAlgorithm names the suite key wrap.
	WrapAlgorithm() string
	// GenerateRecipientKey makes a new key pair for receiving wrapped keys:
	// HPKE with ML-KEM-768+X25519 (intl) or SM2 encryption (gm).
	GenerateRecipientKey() (RecipientKey, error)
	// ParseRecipientKey reads the output of RecipientKey.Bytes.
	ParseRecipientKey(b []byte) (RecipientKey, error)
	// ParseRecipientPublicKey reads the output of RecipientPublicKey.Bytes.
	ParseRecipientPublicKey(b []byte) (RecipientPublicKey, error)
	// WrapKey encrypts dataKey for pub, binding aad: the wrapped key opens
	// only with the matching private key and the same aad. Randomised.
	WrapKey(pub RecipientPublicKey, dataKey, aad []byte) ([]byte, error)
	// UnwrapKey reverses WrapKey. Any mismatch gives ErrUnwrap.
	UnwrapKey(priv RecipientKey, wrapped, aad []byte) ([]byte, error)
}

// SigningKey is a private signature key. Implementations outside this package
// (an HSM-backed key, say) may satisfy it too.
type SigningKey interface {
	// Suite is the suite the key belongs to ("" for Ed25519, which stands beside the suites).
	Suite() ID
	// Algorithm names the signature algorithm, e.g. "ML-DSA-87", "SM2", "Ed25519".
	Algorithm() string
	// Sign signs msg (the whole message; the algorithm hashes it itself).
	Sign(msg []byte) ([]byte, error)
	// Public returns the matching verification key.
	Public() VerifyKey
	// Bytes returns the private key encoding (secret: store it sealed).
	Bytes() []byte
	// KeyID identifies the key pair: see KeyID.
	KeyID() string
}

// VerifyKey is a public signature key.
type VerifyKey interface {
	// Suite is the suite the key belongs to ("" for Ed25519).
	Suite() ID
	// Algorithm names the signature algorithm.
	Algorithm() string
	// Verify reports whether sig is a valid signature of msg by this key.
	Verify(msg, sig []byte) bool
	// Bytes returns the public key encoding.
	Bytes() []byte
	// KeyID identifies the key pair: see KeyID.
	KeyID() string
}

// RecipientKey is a private key that unwraps data keys.
type RecipientKey interface {
	// Suite is the suite the key belongs to.
	Suite() ID
	// Public returns the matching public key.
	Public() RecipientPublicKey
	// Bytes returns the private key encoding (secret: store it sealed).
	Bytes() []byte
	// KeyID identifies the key pair: see KeyID.
	KeyID() string
}

// RecipientPublicKey is a public key that data keys are wrapped for.
type RecipientPublicKey interface {
	// Suite is the suite the key belongs to.
	Suite() ID
	// Bytes returns the public key encoding.
	Bytes() []byte
	// KeyID identifies the key pair: see KeyID.
	KeyID() string
}

// Lookup returns the suite named id, with default settings (for gm, the
// default SM2 user id). An unknown id gives ErrUnknownSuite.
func Lookup(id ID) (Suite, error) {
	switch id {
	case Intl:
		return intlSuite, nil
	case GM:
		return defaultGM, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownSuite, truncateID(string(id)))
}

// FromWire returns the suite with the given one-byte wire id.
func FromWire(b byte) (Suite, error) {
	switch b {
	case WireIntl:
		return intlSuite, nil
	case WireGM:
		return defaultGM, nil
	}
	return nil, fmt.Errorf("%w: wire id 0x%02x", ErrUnknownSuite, b)
}

// IDs lists the suites.
func IDs() []ID { return []ID{Intl, GM} }

// truncateID keeps an attacker-supplied id short in error messages.
func truncateID(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}
