package suite

import (
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"fmt"
	"hash"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
)

// DefaultSM2UserID is the SM2 signer identity that GB/T 32918.2 and GM/T
// 0009 use when none is agreed: the ASCII digits "1234567812345678".
const DefaultSM2UserID = "1234567812345678"

// maxSM2UserID is the longest user id: ENTL is a 16-bit count of bits.
const maxSM2UserID = 8191

const (
	sm2Alg    = "SM2"
	gmWrapAlg = "SM2-SM3-SM4GCM"
	// gmWrapSecret is the size of the random secret SM2 encrypts.
	gmWrapSecret = 32
	// gmC1C3C2Size is the size of the SM2 ciphertext of gmWrapSecret bytes:
	// C1 (uncompressed point, 65) ‖ C3 (SM3, 32) ‖ C2 (32).
	gmC1C3C2Size = 65 + 32 + gmWrapSecret
	wrapInfoGM   = "phix key wrap v1 gm"
)

// gm is the Chinese state-cryptography suite. uid is the SM2 signer id.
type gm struct{ uid []byte }

var defaultGM Suite = gm{uid: []byte(DefaultSM2UserID)}

// NewGM returns the gm suite with a specific SM2 user id for signing and
// verification (the id both parties agreed; nil means DefaultSM2UserID).
// Keys made or parsed by the returned suite sign and verify with that id.
func NewGM(userID []byte) (Suite, error) {
	if userID == nil {
		return defaultGM, nil
	}
	if len(userID) == 0 || len(userID) > maxSM2UserID {
		return nil, fmt.Errorf("%w: SM2 user id must be 1..%d bytes", ErrInvalidKey, maxSM2UserID)
	}
	return gm{uid: append([]byte(nil), userID...)}, nil
}

func (gm) ID() ID                     { return GM }
func (gm) Wire() byte                 { return WireGM }
func (gm) HashSize() int              { return sm3.Size }
func (gm) MACSize() int               { return sm3.Size }
func (gm) AEADKeySize() int           { return sm4.BlockSize }
func (gm) SignatureAlgorithm() string { return sm2Alg }
func (gm) WrapAlgorithm() string      { return gmWrapAlg }

func (gm) NewHash() hash.Hash { return sm3.New() }

func (gm) NewMAC(key []byte) hash.Hash { return hmac.New(sm3.New, key) }

func (gm) KDF(secret, salt, info []byte, length int) ([]byte, error) {
	return kdf(sm3.New, sm3.Size, secret, salt, info, length)
}

func (gm) NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != sm4.BlockSize {
		return nil, fmt.Errorf("%w: SM4-GCM needs 16 bytes, got %d", ErrKeySize, len(key))
	}
	b, err := sm4.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: SM4-GCM", ErrKeySize)
	}
	return cipher.NewGCM(b)
}

// SM2 keys: the private encoding is the 32-byte big-endian scalar, the public
// encoding the 65-byte uncompressed point. The same key types serve signing
// and encryption; the suite keeps the two roles apart by interface.

type sm2Private struct {
	sk  *sm2.PrivateKey
	raw []byte
	pub *sm2Public
}

type sm2Public struct {
	pk  *ecdsa.PublicKey
	raw []byte
	uid []byte
	id  string
	alg string
}

func (s gm) generate(alg string) (*sm2Private, error) {
	sk, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("suite: SM2 key generation: %w", err)
	}
	return s.fromPrivate(sk, alg)
}

func (s gm) fromPrivate(sk *sm2.PrivateKey, alg string) (*sm2Private, error) {
	raw := make([]byte, 32)
	sk.D.FillBytes(raw)
	pub, err := s.fromPublic(&sk.PublicKey, alg)
	if err != nil {
		return nil, err
	}
	return &sm2Private{sk: sk, raw: raw, pub: pub}, nil
}

func (s gm) fromPublic(pk *ecdsa.PublicKey, alg string) (*sm2Public, error) {
	e, err := sm2.PublicKeyToECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("%w: SM2 public key", ErrInvalidKey)
	}
	raw := e.Bytes()
	return &sm2Public{pk: pk, raw: raw, uid: s.uid, id: KeyID(GM, alg, raw), alg: alg}, nil
}

func (s gm) parsePrivate(b []byte, alg string) (*sm2Private, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("%w: SM2 private key must be 32 bytes, got %d", ErrInvalidKey, len(b))
	}
	sk, err := sm2.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: SM2 private key out of range", ErrInvalidKey)
	}
	return s.fromPrivate(sk, alg)
}

func (s gm) parsePublic(b []byte, alg string) (*sm2Public, error) {
	if len(b) != 65 || b[0] != 4 {
		return nil, fmt.Errorf("%w: SM2 public key must be a 65-byte uncompressed point, got %d bytes", ErrInvalidKey, len(b))
	}
	pk, err := sm2.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: SM2 public key is not on the curve", ErrInvalidKey)
	}
	return s.fromPublic(pk, alg)
}

func (s gm) GenerateSigningKey() (SigningKey, error) {
	k, err := s.generate(sm2Alg)
	if err != nil {
		return nil, err
	}
	return (*sm2Signer)(k), nil
}

func (s gm) ParseSigningKey(b []byte) (SigningKey, error) {
	k, err := s.parsePrivate(b, sm2Alg)
	if err != nil {
		return nil, err
	}
	return (*sm2Signer)(k), nil
}

func (s gm) ParseVerifyKey(b []byte) (VerifyKey, error) {
	k, err := s.parsePublic(b, sm2Alg)
	if err != nil {
		return nil, err
	}
	return (*sm2Verifier)(k), nil
}

// sm2Signer signs with the SM2 digital signature algorithm over
// SM3(ZA ‖ msg), ZA computed from the suite's user id.
type sm2Signer sm2Private

// sm2Verifier verifies SM2 signatures (ASN.1 DER r,s).
type sm2Verifier sm2Public

func (*sm2Signer) Suite() ID           { return GM }
func (*sm2Signer) Algorithm() string   { return sm2Alg }
func (k *sm2Signer) Public() VerifyKey { return (*sm2Verifier)(k.pub) }
func (k *sm2Signer) Bytes() []byte     { return append([]byte(nil), k.raw...) }
func (k *sm2Signer) KeyID() string     { return k.pub.id }

func (k *sm2Signer) Sign(msg []byte) ([]byte, error) {
	sig, err := sm2.SignASN1(rand.Reader, k.sk, msg, sm2.NewSM2SignerOption(true, k.pub.uid))
	if err != nil {
		return nil, fmt.Errorf("suite: SM2 sign: %w", err)
	}
	return sig, nil
}

func (*sm2Verifier) Suite() ID         { return GM }
func (*sm2Verifier) Algorithm() string { return sm2Alg }
func (v *sm2Verifier) Bytes() []byte   { return append([]byte(nil), v.raw...) }
func (v *sm2Verifier) KeyID() string   { return v.id }

func (v *sm2Verifier) Verify(msg, sig []byte) bool {
	if len(sig) == 0 || len(sig) > 80 {
		return false
	}
	return sm2.VerifyASN1WithSM2(v.pk, v.uid, msg, sig)
}

// SM2 recipient keys.

type sm2Recipient sm2Private
type sm2RecipientPublic sm2Public

func (s gm) GenerateRecipientKey() (RecipientKey, error) {
	k, err := s.generate(gmWrapAlg)
	if err != nil {
		return nil, err
	}
	return (*sm2Recipient)(k), nil
}

func (s gm) ParseRecipientKey(b []byte) (RecipientKey, error) {
	k, err := s.parsePrivate(b, gmWrapAlg)
	if err != nil {
		return nil, err
	}
	return (*sm2Recipient)(k), nil
}

func (s gm) ParseRecipientPublicKey(b []byte) (RecipientPublicKey, error) {
	k, err := s.parsePublic(b, gmWrapAlg)
	if err != nil {
		return nil, err
	}
	return (*sm2RecipientPublic)(k), nil
}

func (*sm2Recipient) Suite() ID { return GM }
func (k *sm2Recipient) Public() RecipientPublicKey {
	return (*sm2RecipientPublic)(k.pub)
}
func (k *sm2Recipient) Bytes() []byte { return append([]byte(nil), k.raw...) }
func (k *sm2Recipient) KeyID() string { return k.pub.id }

func (*sm2RecipientPublic) Suite() ID       { return GM }
func (k *sm2RecipientPublic) Bytes() []byte { return append([]byte(nil), k.raw...) }
func (k *sm2RecipientPublic) KeyID() string { return k.id }

// WrapKey is a KEM/DEM: SM2 encryption (GB/T 32918.4, C1C3C2) of a fresh
// 32-byte secret z, then SM4-GCM of dataKey under HKDF-SM3(z, salt=C1C3C2),
// with aad bound as GCM associated data. SM2 encryption alone takes no
// associated data, hence the DEM. The DEM key is used once, so its nonce is zero.
func (s gm) WrapKey(pub RecipientPublicKey, dataKey, aad []byte) ([]byte, error) {
	p, ok := pub.(*sm2RecipientPublic)
	if pub == nil || ok && p == nil {
		return nil, fmt.Errorf("%w: no recipient key", ErrInvalidKey)
	}
	if !ok {
		if pub.Suite() != GM {
			return nil, fmt.Errorf("%w: %s recipient key given to gm", ErrWrongSuite, pub.Suite())
		}
		// A public key implemented elsewhere (kms, an HSM): use its encoding.
		q, err := s.ParseRecipientPublicKey(pub.Bytes())
		if err != nil {
			return nil, err
		}
		p = q.(*sm2RecipientPublic)
	}
	z := make([]byte, gmWrapSecret)
	defer Wipe(z)
	if _, err := rand.Read(z); err != nil {
		return nil, fmt.Errorf("suite: random: %w", err)
	}
	c, err := sm2.Encrypt(rand.Reader, p.pk, z, sm2.NewPlainEncrypterOpts(sm2.MarshalUncompressed, sm2.C1C3C2))
	if err != nil {
		return nil, fmt.Errorf("suite: SM2 encrypt: %w", err)
	}
	if len(c) != gmC1C3C2Size {
		return nil, fmt.Errorf("suite: SM2 encrypt: unexpected ciphertext size %d", len(c))
	}
	aead, err := s.wrapAEAD(z, c)
	if err != nil {
		return nil, err
	}
	return aead.Seal(c, make([]byte, aead.NonceSize()), dataKey, aad), nil
}

func (s gm) UnwrapKey(priv RecipientKey, wrapped, aad []byte) ([]byte, error) {
	k, ok := priv.(*sm2Recipient)
	if !ok || k == nil {
		if priv == nil {
			return nil, fmt.Errorf("%w: no recipient key", ErrInvalidKey)
		}
		return nil, fmt.Errorf("%w: %s recipient key given to gm", ErrWrongSuite, priv.Suite())
	}
	if len(wrapped) < gmC1C3C2Size+16 || wrapped[0] != 4 {
		return nil, ErrUnwrap
	}
	c := wrapped[:gmC1C3C2Size]
	z, err := k.sk.Decrypt(nil, c, sm2.NewPlainDecrypterOpts(sm2.C1C3C2))
	if err != nil || len(z) != gmWrapSecret {
		return nil, ErrUnwrap
	}
	defer Wipe(z)
	aead, err := s.wrapAEAD(z, c)
	if err != nil {
		return nil, ErrUnwrap
	}
	pt, err := aead.Open(nil, make([]byte, aead.NonceSize()), wrapped[gmC1C3C2Size:], aad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return pt, nil
}

func (s gm) wrapAEAD(z, c []byte) (cipher.AEAD, error) {
	kek, err := s.KDF(z, c, []byte(wrapInfoGM), sm4.BlockSize)
	if err != nil {
		return nil, err
	}
	defer Wipe(kek)
	return s.NewAEAD(kek)
}
