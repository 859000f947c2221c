package seal

import (
	"crypto/rand"
	"errors"
	"fmt"

	"phix/suite"
)

// Recipient is someone a file is sealed for: it wraps the data key into a stanza.
type Recipient interface {
	// StanzaType is StanzaPublicKey or StanzaKEK.
	StanzaType() byte
	// KeyID and KeyVersion address the key that can unwrap the stanza.
	KeyID() string
	KeyVersion() uint32
	// Wrap wraps dataKey under the suite s, binding aad.
	Wrap(s suite.Suite, dataKey, aad []byte) ([]byte, error)
}

// Identity can open stanzas addressed to it. The Reader offers it every
// stanza of its type whose key id it claims.
type Identity interface {
	// StanzaType is the type of stanza this identity opens.
	StanzaType() byte
	// HasKeyID reports whether the identity holds a key with this id (any version).
	HasKeyID(keyID string) bool
	// Unwrap opens a stanza addressed to keyID/version. It returns an error
	// wrapping ErrKeyVersion when it holds the key id but not that version,
	// and one wrapping ErrUnwrap when the key does not open the stanza.
	Unwrap(s suite.Suite, keyID string, version uint32, wrapped, aad []byte) ([]byte, error)
}

// PublicKeyRecipient seals for the holder of a suite recipient key. version
// is the key's version in the recipient's keyring (recorded in the header).
func PublicKeyRecipient(pub suite.RecipientPublicKey, version uint32) Recipient {
	return &pubRecipient{pub: pub, version: version}
}

type pubRecipient struct {
	pub     suite.RecipientPublicKey
	version uint32
}

func (*pubRecipient) StanzaType() byte     { return StanzaPublicKey }
func (r *pubRecipient) KeyID() string      { return r.pub.KeyID() }
func (r *pubRecipient) KeyVersion() uint32 { return r.version }
func (r *pubRecipient) Wrap(s suite.Suite, dataKey, aad []byte) ([]byte, error) {
	if r.pub.Suite() != s.ID() {
		return nil, fmt.Errorf("%w: recipient key %s is a %s key, file suite is %s", ErrOptions, r.pub.KeyID(), r.pub.Suite(), s.ID())
	}
	return s.WrapKey(r.pub, dataKey, aad)
}

// PrivateKeyIdentity opens stanzas wrapped for priv. version 0 accepts any
// recorded version; otherwise the stanza's version must match.
func PrivateKeyIdentity(priv suite.RecipientKey, version uint32) Identity {
	return &privIdentity{priv: priv, version: version}
}

type privIdentity struct {
	priv    suite.RecipientKey
	version uint32
}

func (*privIdentity) StanzaType() byte          { return StanzaPublicKey }
func (i *privIdentity) HasKeyID(id string) bool { return id == i.priv.KeyID() }
func (i *privIdentity) Unwrap(s suite.Suite, keyID string, version uint32, wrapped, aad []byte) ([]byte, error) {
	if i.version != 0 && version != i.version {
		return nil, fmt.Errorf("%w: key %s version %d needed, have version %d", ErrKeyVersion, keyID, version, i.version)
	}
	if i.priv.Suite() != s.ID() {
		return nil, fmt.Errorf("%w: key %s is a %s key, file suite is %s", ErrUnwrap, keyID, i.priv.Suite(), s.ID())
	}
	dk, err := s.UnwrapKey(i.priv, wrapped, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s", ErrUnwrap, keyID)
	}
	return dk, nil
}

// KEKRecipient seals for the holder of a symmetric key-encryption key (a
// kms KEK, so a sender can reopen its own files). kek must be the suite's
// AEAD key size. The stanza is nonce(12) ‖ AEAD(kek, nonce, dataKey, aad).
func KEKRecipient(keyID string, version uint32, kek []byte) Recipient {
	return &kekRecipient{id: keyID, version: version, kek: kek}
}

type kekRecipient struct {
	id      string
	version uint32
	kek     []byte
}

func (*kekRecipient) StanzaType() byte     { return StanzaKEK }
func (r *kekRecipient) KeyID() string      { return r.id }
func (r *kekRecipient) KeyVersion() uint32 { return r.version }
func (r *kekRecipient) Wrap(s suite.Suite, dataKey, aad []byte) ([]byte, error) {
	a, err := s.NewAEAD(r.kek)
	if err != nil {
		return nil, fmt.Errorf("%w: KEK %s: %w", ErrOptions, r.id, err)
	}
	out := make([]byte, nonceSize, nonceSize+len(dataKey)+tagSize)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("seal: random: %w", err)
	}
	return a.Seal(out, out[:nonceSize], dataKey, aad), nil
}

// KEKLookup returns the KEK with the given id and version. It returns an
// error wrapping ErrNoRecipient if it has no such id, ErrKeyVersion if it has
// the id but not the version.
type KEKLookup func(keyID string, version uint32) ([]byte, error)

// KEKIdentity opens KEK stanzas with keys from lookup; has reports which key
// ids the keyring holds.
func KEKIdentity(has func(keyID string) bool, lookup KEKLookup) Identity {
	return &kekIdentity{has: has, lookup: lookup}
}

type kekIdentity struct {
	has    func(string) bool
	lookup KEKLookup
}

func (*kekIdentity) StanzaType() byte          { return StanzaKEK }
func (i *kekIdentity) HasKeyID(id string) bool { return i.has(id) }
func (i *kekIdentity) Unwrap(s suite.Suite, keyID string, version uint32, wrapped, aad []byte) ([]byte, error) {
	kek, err := i.lookup(keyID, version)
	if err != nil {
		if errors.Is(err, ErrKeyVersion) || errors.Is(err, ErrNoRecipient) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: KEK %s version %d unavailable", ErrKeyVersion, keyID, version)
	}
	a, err := s.NewAEAD(kek)
	if err != nil || len(wrapped) < nonceSize+tagSize {
		return nil, fmt.Errorf("%w: KEK %s", ErrUnwrap, keyID)
	}
	dk, err := a.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: KEK %s", ErrUnwrap, keyID)
	}
	return dk, nil
}
