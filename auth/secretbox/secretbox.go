// Package secretbox seals the small secrets of the auth packages (TOTP
// secrets, the authorization server's signing keys) so none sits on disk in
// plaintext. The key comes from the node's key manager (FromKMS): a data key
// wrapped under the hospital's data KEK, so rotating or destroying that KEK
// governs these secrets too.
package secretbox

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"

	"phix/kms"
	"phix/suite"
)

// Sealer seals and opens secrets bound to a label (the label is
// authenticated, not secret: a blob sealed for "totp/alice" does not open
// as "totp/bob").
type Sealer interface {
	Seal(label string, plaintext []byte) ([]byte, error)
	Open(label string, blob []byte) ([]byte, error)
}

// ErrOpen is returned for a blob that does not open (wrong key, wrong
// label, tampered).
var ErrOpen = errors.New("secretbox: sealed secret does not open")

const version = 1

// Box is an AEAD Sealer: blob = version(1) || nonce || ciphertext+tag, with
// the label as additional data.
type Box struct{ aead cipher.AEAD }

// New returns a Box over an AEAD.
func New(aead cipher.AEAD) *Box { return &Box{aead: aead} }

// NewKey returns a Box with the suite's AEAD (AES-256-GCM or SM4-GCM) under key.
func NewKey(id suite.ID, key []byte) (*Box, error) {
	s, err := suite.Lookup(id)
	if err != nil {
		return nil, err
	}
	a, err := s.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	return New(a), nil
}

// FromKMS returns a Box keyed by the hospital's data key "auth-secrets"
// (created on first use).
func FromKMS(ctx context.Context, m *kms.Manager, hospital string, id suite.ID) (*Box, error) {
	key, err := m.EnsureDataKey(ctx, hospital, kms.KindFile, "auth-secrets")
	if err != nil {
		return nil, err
	}
	defer suite.Wipe(key)
	return NewKey(id, key)
}

// Seal implements Sealer.
func (b *Box) Seal(label string, plaintext []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+b.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		return nil, err
	}
	return b.aead.Seal(out, out[1:1+ns], plaintext, []byte(label)), nil
}

// Open implements Sealer.
func (b *Box) Open(label string, blob []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(blob) < 1+ns+b.aead.Overhead() || blob[0] != version {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, blob[1:1+ns], blob[1+ns:], []byte(label))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
