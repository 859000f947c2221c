package seal

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"phix/suite"
)

// Key files: PEM blocks with the suite, key id and key version as headers,
// so a key file says what it is. A private key file may be encrypted under a
// passphrase with Argon2id (RFC 9106, t=3, m=64 MiB, p=4) and the suite AEAD.
const (
	pemPublic  = "PHIX RECIPIENT PUBLIC KEY"
	pemPrivate = "PHIX RECIPIENT PRIVATE KEY"

	argonTime    = 3
	argonMemory  = 64 << 10 // KiB
	argonThreads = 4
	// Bounds for parameters read from a file, so a crafted key file cannot
	// make the reader allocate gigabytes or spin for hours.
	maxArgonMemory = 1 << 20 // KiB = 1 GiB
	maxArgonTime   = 16
)

// Key-file errors.
var (
	ErrKeyFile            = &Error{"SEAL_KEYFILE", "not a valid phix key file"}
	ErrPassphrase         = &Error{"SEAL_PASSPHRASE", "wrong passphrase (or the key file is damaged)"}
	ErrPassphraseRequired = &Error{"SEAL_PASSPHRASE_REQUIRED", "the key file is encrypted: a passphrase is required"}
)

// KeyFile is a parsed recipient key file.
type KeyFile struct {
	Suite      suite.Suite
	KeyVersion uint32
	Public     suite.RecipientPublicKey
	Private    suite.RecipientKey // nil for a public key file
}

// Recipient returns the recipient for a key file.
func (k *KeyFile) Recipient() Recipient { return PublicKeyRecipient(k.Public, k.KeyVersion) }

// Identity returns the identity for a private key file (nil otherwise).
func (k *KeyFile) Identity() Identity {
	if k.Private == nil {
		return nil
	}
	return PrivateKeyIdentity(k.Private, k.KeyVersion)
}

// MarshalPublicKeyFile encodes a recipient public key file.
func MarshalPublicKeyFile(pub suite.RecipientPublicKey, version uint32) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Headers: map[string]string{
		"Suite": string(pub.Suite()), "Key-Id": pub.KeyID(), "Key-Version": strconv.FormatUint(uint64(version), 10),
	}, Bytes: pub.Bytes()})
}

// MarshalPrivateKeyFile encodes a recipient private key file, encrypted when
// passphrase is not empty.
func MarshalPrivateKeyFile(priv suite.RecipientKey, version uint32, passphrase []byte) ([]byte, error) {
	s, err := suite.Lookup(priv.Suite())
	if err != nil {
		return nil, err
	}
	h := map[string]string{"Suite": string(priv.Suite()), "Key-Id": priv.KeyID(), "Key-Version": strconv.FormatUint(uint64(version), 10)}
	body := priv.Bytes()
	defer suite.Wipe(body)
	if len(passphrase) > 0 {
		salt, nonce := make([]byte, 16), make([]byte, nonceSize)
		if _, err := rand.Read(salt); err != nil {
			return nil, fmt.Errorf("seal: random: %w", err)
		}
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("seal: random: %w", err)
		}
		h["Encryption"] = "argon2id"
		h["Argon2-Params"] = fmt.Sprintf("t=%d,m=%d,p=%d", argonTime, argonMemory, argonThreads)
		h["Argon2-Salt"] = base64.StdEncoding.EncodeToString(salt)
		h["Nonce"] = base64.StdEncoding.EncodeToString(nonce)
		a, err := passphraseAEAD(s, passphrase, salt, argonTime, argonMemory, argonThreads)
		if err != nil {
			return nil, err
		}
		body = a.Seal(nil, nonce, body, keyFileAAD(priv.Suite(), priv.KeyID(), version))
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Headers: h, Bytes: body}), nil
}

func passphraseAEAD(s suite.Suite, passphrase, salt []byte, t, m uint32, p uint8) (cipher.AEAD, error) {
	k := argon2.IDKey(passphrase, salt, t, m, p, uint32(s.AEADKeySize()))
	defer suite.Wipe(k)
	return s.NewAEAD(k)
}

func keyFileAAD(id suite.ID, keyID string, version uint32) []byte {
	b := []byte("phix private key v1\x00" + string(id) + "\x00" + keyID + "\x00")
	return binary.BigEndian.AppendUint32(b, version)
}

// ParseKeyFile reads a public or private key file. passphrase is called only
// for an encrypted private key; it may be nil, giving ErrPassphraseRequired.
func ParseKeyFile(b []byte, passphrase func() ([]byte, error)) (*KeyFile, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: expected one PEM block", ErrKeyFile)
	}
	if blk.Type != pemPublic && blk.Type != pemPrivate {
		return nil, fmt.Errorf("%w: unexpected block type", ErrKeyFile)
	}
	s, err := suite.Lookup(suite.ID(blk.Headers["Suite"]))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	v, err := strconv.ParseUint(blk.Headers["Key-Version"], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: bad Key-Version", ErrKeyFile)
	}
	kf := &KeyFile{Suite: s, KeyVersion: uint32(v)}
	wantID := blk.Headers["Key-Id"]
	if blk.Type == pemPublic {
		kf.Public, err = s.ParseRecipientPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
		}
	} else {
		body := blk.Bytes
		switch blk.Headers["Encryption"] {
		case "":
		case "argon2id":
			if passphrase == nil {
				return nil, ErrPassphraseRequired
			}
			body, err = decryptKeyBody(s, blk, wantID, uint32(v), passphrase)
			if err != nil {
				return nil, err
			}
			defer suite.Wipe(body)
		default:
			return nil, fmt.Errorf("%w: unknown encryption", ErrKeyFile)
		}
		kf.Private, err = s.ParseRecipientKey(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
		}
		kf.Public = kf.Private.Public()
	}
	if !suite.EqualString(kf.Public.KeyID(), wantID) {
		return nil, fmt.Errorf("%w: Key-Id does not match the key", ErrKeyFile)
	}
	return kf, nil
}

func decryptKeyBody(s suite.Suite, blk *pem.Block, keyID string, version uint32, passphrase func() ([]byte, error)) ([]byte, error) {
	var t, m, p uint64
	if n, err := fmt.Sscanf(blk.Headers["Argon2-Params"], "t=%d,m=%d,p=%d", &t, &m, &p); err != nil || n != 3 ||
		t == 0 || t > maxArgonTime || m < 8 || m > maxArgonMemory || p == 0 || p > 255 || m < 8*p {
		return nil, fmt.Errorf("%w: bad Argon2-Params", ErrKeyFile)
	}
	salt, err1 := base64.StdEncoding.DecodeString(blk.Headers["Argon2-Salt"])
	nonce, err2 := base64.StdEncoding.DecodeString(blk.Headers["Nonce"])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(salt) > 64 || len(nonce) != nonceSize {
		return nil, fmt.Errorf("%w: bad Argon2-Salt or Nonce", ErrKeyFile)
	}
	pass, err := passphrase()
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(pass))) == 0 {
		return nil, ErrPassphraseRequired
	}
	a, err := passphraseAEAD(s, pass, salt, uint32(t), uint32(m), uint8(p))
	if err != nil {
		return nil, err
	}
	body, err := a.Open(nil, nonce, blk.Bytes, keyFileAAD(s.ID(), keyID, version))
	if err != nil {
		return nil, ErrPassphrase
	}
	return body, nil
}
