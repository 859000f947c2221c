package suite

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
)

// Ed25519Algorithm names Ed25519 keys.
const Ed25519Algorithm = "Ed25519"

// Ed25519 stands beside the suites for lightweight and TLS-adjacent
// signatures (tokens, short-lived statements) where ML-DSA-87's 4.6 KB
// signatures do not fit. Its keys report Suite() == "" and their KeyID uses
// SHA-256. The private encoding is the 32-byte RFC 8032 seed.

type ed25519Signer struct {
	sk  ed25519.PrivateKey
	pub *ed25519Verifier
}

type ed25519Verifier struct {
	pk ed25519.PublicKey
	id string
}

// GenerateEd25519 makes a new Ed25519 signing key.
func GenerateEd25519() (SigningKey, error) {
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("suite: Ed25519 key generation: %w", err)
	}
	return newEd25519Signer(sk), nil
}

func newEd25519Signer(sk ed25519.PrivateKey) *ed25519Signer {
	pk := sk.Public().(ed25519.PublicKey)
	return &ed25519Signer{sk: sk, pub: &ed25519Verifier{pk: pk, id: KeyID("", Ed25519Algorithm, pk)}}
}

// ParseEd25519SigningKey reads a 32-byte Ed25519 seed.
func ParseEd25519SigningKey(b []byte) (SigningKey, error) {
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: Ed25519 private key must be a %d-byte seed, got %d bytes", ErrInvalidKey, ed25519.SeedSize, len(b))
	}
	return newEd25519Signer(ed25519.NewKeyFromSeed(b)), nil
}

// ParseEd25519VerifyKey reads a 32-byte Ed25519 public key.
func ParseEd25519VerifyKey(b []byte) (VerifyKey, error) {
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: Ed25519 public key must be %d bytes, got %d", ErrInvalidKey, ed25519.PublicKeySize, len(b))
	}
	pk := ed25519.PublicKey(append([]byte(nil), b...))
	return &ed25519Verifier{pk: pk, id: KeyID("", Ed25519Algorithm, pk)}, nil
}

func (*ed25519Signer) Suite() ID           { return "" }
func (*ed25519Signer) Algorithm() string   { return Ed25519Algorithm }
func (k *ed25519Signer) Public() VerifyKey { return k.pub }
func (k *ed25519Signer) Bytes() []byte     { return append([]byte(nil), k.sk.Seed()...) }
func (k *ed25519Signer) KeyID() string     { return k.pub.id }

func (k *ed25519Signer) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(k.sk, msg), nil
}

func (*ed25519Verifier) Suite() ID         { return "" }
func (*ed25519Verifier) Algorithm() string { return Ed25519Algorithm }
func (v *ed25519Verifier) Bytes() []byte   { return append([]byte(nil), v.pk...) }
func (v *ed25519Verifier) KeyID() string   { return v.id }

func (v *ed25519Verifier) Verify(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(v.pk, msg, sig)
}
