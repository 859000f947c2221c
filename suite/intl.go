package suite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"fmt"
	"hash"

	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// intl is the international suite.
type intl struct{}

var intlSuite Suite = intl{}

// wrapInfoIntl is the HPKE info string; it separates phix key wraps from any
// other use of the same recipient key.
const wrapInfoIntl = "phix key wrap v1 intl"

// The HPKE ciphersuite: ML-KEM-768+X25519 (0x647a), HKDF-SHA256, AES-256-GCM.
var (
	intlKEM  = hpke.MLKEM768X25519()
	intlKDF  = hpke.HKDFSHA256()
	intlAEAD = hpke.AES256GCM()
)

const (
	mldsaAlg    = "ML-DSA-87"
	intlWrapAlg = "HPKE-MLKEM768X25519-HKDFSHA256-AES256GCM"
	// intlEncSize is the size of the HPKE encapsulated key of ML-KEM-768+X25519.
	intlEncSize = 1088 + 32
)

func (intl) ID() ID                     { return Intl }
func (intl) Wire() byte                 { return WireIntl }
func (intl) HashSize() int              { return sha256.Size }
func (intl) MACSize() int               { return 48 }
func (intl) AEADKeySize() int           { return 32 }
func (intl) SignatureAlgorithm() string { return mldsaAlg }
func (intl) WrapAlgorithm() string      { return intlWrapAlg }

func (intl) NewHash() hash.Hash { return sha256.New() }

func newSHA3384() hash.Hash { return sha3.New384() }

func (intl) NewMAC(key []byte) hash.Hash { return hmac.New(newSHA3384, key) }

func (intl) KDF(secret, salt, info []byte, length int) ([]byte, error) {
	return kdf(sha256.New, sha256.Size, secret, salt, info, length)
}

func (intl) NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: AES-256-GCM needs 32 bytes, got %d", ErrKeySize, len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: AES-256-GCM", ErrKeySize)
	}
	return cipher.NewGCM(b)
}

// ML-DSA-87 keys. The private encoding is the 32-byte seed (FIPS 204 ξ): it
// is compact and expands to the full key deterministically.

type mldsaSigner struct {
	seed [mldsa87.SeedSize]byte
	sk   *mldsa87.PrivateKey
	pub  *mldsaVerifier
}

type mldsaVerifier struct {
	pk  *mldsa87.PublicKey
	raw []byte
	id  string
}

func (intl) GenerateSigningKey() (SigningKey, error) {
	var seed [mldsa87.SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("suite: random: %w", err)
	}
	return newMLDSASigner(&seed), nil
}

func newMLDSASigner(seed *[mldsa87.SeedSize]byte) *mldsaSigner {
	pk, sk := mldsa87.NewKeyFromSeed(seed)
	raw := pk.Bytes()
	return &mldsaSigner{seed: *seed, sk: sk, pub: &mldsaVerifier{pk: pk, raw: raw, id: KeyID(Intl, mldsaAlg, raw)}}
}

func (intl) ParseSigningKey(b []byte) (SigningKey, error) {
	if len(b) != mldsa87.SeedSize {
		return nil, fmt.Errorf("%w: ML-DSA-87 private key must be a %d-byte seed, got %d bytes", ErrInvalidKey, mldsa87.SeedSize, len(b))
	}
	var seed [mldsa87.SeedSize]byte
	copy(seed[:], b)
	return newMLDSASigner(&seed), nil
}

func (intl) ParseVerifyKey(b []byte) (VerifyKey, error) {
	if len(b) != mldsa87.PublicKeySize {
		return nil, fmt.Errorf("%w: ML-DSA-87 public key must be %d bytes, got %d", ErrInvalidKey, mldsa87.PublicKeySize, len(b))
	}
	pk := new(mldsa87.PublicKey)
	if err := pk.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: ML-DSA-87 public key", ErrInvalidKey)
	}
	raw := append([]byte(nil), b...)
	return &mldsaVerifier{pk: pk, raw: raw, id: KeyID(Intl, mldsaAlg, raw)}, nil
}

func (*mldsaSigner) Suite() ID           { return Intl }
func (*mldsaSigner) Algorithm() string   { return mldsaAlg }
func (k *mldsaSigner) Public() VerifyKey { return k.pub }
func (k *mldsaSigner) Bytes() []byte     { return append([]byte(nil), k.seed[:]...) }
func (k *mldsaSigner) KeyID() string     { return k.pub.id }

// Sign produces a hedged (randomised) ML-DSA-87 signature with an empty
// context string, as FIPS 204 recommends.
func (k *mldsaSigner) Sign(msg []byte) ([]byte, error) {
	sig := make([]byte, mldsa87.SignatureSize)
	if err := mldsa87.SignTo(k.sk, msg, nil, true, sig); err != nil {
		return nil, fmt.Errorf("suite: ML-DSA-87 sign: %w", err)
	}
	return sig, nil
}

func (*mldsaVerifier) Suite() ID         { return Intl }
func (*mldsaVerifier) Algorithm() string { return mldsaAlg }
func (v *mldsaVerifier) Bytes() []byte   { return append([]byte(nil), v.raw...) }
func (v *mldsaVerifier) KeyID() string   { return v.id }

func (v *mldsaVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != mldsa87.SignatureSize {
		return false
	}
	return mldsa87.Verify(v.pk, msg, nil, sig)
}

// HPKE recipient keys. The private encoding is RFC 9180 SerializePrivateKey
// for ML-KEM-768+X25519 (a 32-byte seed).

type hpkeRecipient struct {
	sk  hpke.PrivateKey
	raw []byte
	pub *hpkePublic
}

type hpkePublic struct {
	pk  hpke.PublicKey
	raw []byte
	id  string
}

func (intl) GenerateRecipientKey() (RecipientKey, error) {
	sk, err := intlKEM.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("suite: HPKE key generation: %w", err)
	}
	return newHPKERecipient(sk)
}

func newHPKERecipient(sk hpke.PrivateKey) (*hpkeRecipient, error) {
	raw, err := sk.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key", ErrInvalidKey)
	}
	praw := sk.PublicKey().Bytes()
	return &hpkeRecipient{sk: sk, raw: raw, pub: &hpkePublic{pk: sk.PublicKey(), raw: praw, id: KeyID(Intl, intlWrapAlg, praw)}}, nil
}

func (intl) ParseRecipientKey(b []byte) (RecipientKey, error) {
	sk, err := intlKEM.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE ML-KEM-768+X25519 private key (%d bytes)", ErrInvalidKey, len(b))
	}
	return newHPKERecipient(sk)
}

func (intl) ParseRecipientPublicKey(b []byte) (RecipientPublicKey, error) {
	pk, err := intlKEM.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE ML-KEM-768+X25519 public key (%d bytes)", ErrInvalidKey, len(b))
	}
	raw := append([]byte(nil), b...)
	return &hpkePublic{pk: pk, raw: raw, id: KeyID(Intl, intlWrapAlg, raw)}, nil
}

func (*hpkeRecipient) Suite() ID                    { return Intl }
func (k *hpkeRecipient) Public() RecipientPublicKey { return k.pub }
func (k *hpkeRecipient) Bytes() []byte              { return append([]byte(nil), k.raw...) }
func (k *hpkeRecipient) KeyID() string              { return k.pub.id }

func (*hpkePublic) Suite() ID       { return Intl }
func (k *hpkePublic) Bytes() []byte { return append([]byte(nil), k.raw...) }
func (k *hpkePublic) KeyID() string { return k.id }

// WrapKey is single-shot HPKE base mode: enc ‖ Seal(aad, dataKey).
func (in intl) WrapKey(pub RecipientPublicKey, dataKey, aad []byte) ([]byte, error) {
	p, ok := pub.(*hpkePublic)
	if pub == nil || ok && p == nil {
		return nil, fmt.Errorf("%w: no recipient key", ErrInvalidKey)
	}
	if !ok {
		if pub.Suite() != Intl {
			return nil, fmt.Errorf("%w: %s recipient key given to intl", ErrWrongSuite, pub.Suite())
		}
		// A public key implemented elsewhere (kms, an HSM): use its encoding.
		q, err := in.ParseRecipientPublicKey(pub.Bytes())
		if err != nil {
			return nil, err
		}
		p = q.(*hpkePublic)
	}
	enc, s, err := hpke.NewSender(p.pk, intlKDF, intlAEAD, []byte(wrapInfoIntl))
	if err != nil {
		return nil, fmt.Errorf("suite: HPKE sender: %w", err)
	}
	ct, err := s.Seal(aad, dataKey)
	if err != nil {
		return nil, fmt.Errorf("suite: HPKE seal: %w", err)
	}
	return append(enc, ct...), nil
}

func (intl) UnwrapKey(priv RecipientKey, wrapped, aad []byte) ([]byte, error) {
	k, ok := priv.(*hpkeRecipient)
	if !ok || k == nil {
		if priv == nil {
			return nil, fmt.Errorf("%w: no recipient key", ErrInvalidKey)
		}
		return nil, fmt.Errorf("%w: %s recipient key given to intl", ErrWrongSuite, priv.Suite())
	}
	if len(wrapped) < intlEncSize+16 {
		return nil, ErrUnwrap
	}
	r, err := hpke.NewRecipient(wrapped[:intlEncSize], k.sk, intlKDF, intlAEAD, []byte(wrapInfoIntl))
	if err != nil {
		return nil, ErrUnwrap
	}
	pt, err := r.Open(aad, wrapped[intlEncSize:])
	if err != nil {
		return nil, ErrUnwrap
	}
	return pt, nil
}
