package pki

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strconv"

	"golang.org/x/crypto/argon2"
)

// PEM block types of private key files.
const (
	pemPlainKey     = "PRIVATE KEY" // PKCS#8, as every TLS stack reads it
	pemEncryptedKey = "PHIX ENCRYPTED PRIVATE KEY"
)

// Argon2id parameters for passphrase-sealed key files (RFC 9106 second
// recommended option: 64 MiB, 3 passes).
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 2
)

// MarshalPrivateKey encodes key as PEM. With a passphrase the PKCS#8 bytes
// are sealed with AES-256-GCM under an Argon2id-derived key; the KDF
// parameters, salt and nonce travel in PEM headers and are bound as AAD.
func MarshalPrivateKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, wrap(CodeKeyFile, err, "encode private key")
	}
	defer wipe(der)
	if len(passphrase) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: pemPlainKey, Bytes: der}), nil
	}
	salt := make([]byte, 16)
	nonce := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return nil, wrap(CodeKeyFile, err, "random salt")
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, wrap(CodeKeyFile, err, "random nonce")
	}
	h := map[string]string{
		"KDF":   fmt.Sprintf("argon2id,t=%d,m=%d,p=%d", argonTime, argonMemory, argonThreads),
		"Salt":  base64.StdEncoding.EncodeToString(salt),
		"Nonce": base64.StdEncoding.EncodeToString(nonce),
	}
	aead, err := keyFileAEAD(passphrase, salt, argonTime, argonMemory, argonThreads)
	if err != nil {
		return nil, err
	}
	ct := aead.Seal(nil, nonce, der, keyFileAAD(h))
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedKey, Headers: h, Bytes: ct}), nil
}

// ParsePrivateKey reads MarshalPrivateKey's output (or any PKCS#8 PEM).
// passphrase is called only for a sealed file. A wrong passphrase and a
// corrupted file give the same PKI-KEY-FILE error.
func ParsePrivateKey(b []byte, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errorf(CodeKeyFile, "no PEM private key")
	}
	der := block.Bytes
	switch block.Type {
	case pemPlainKey:
	case pemEncryptedKey:
		if passphrase == nil {
			return nil, errorf(CodeKeyFile, "key file is sealed and no passphrase was given")
		}
		pw, err := passphrase()
		if err != nil {
			return nil, wrap(CodeKeyFile, err, "passphrase")
		}
		var t, m uint32
		var p uint8
		if _, err := fmt.Sscanf(block.Headers["KDF"], "argon2id,t=%d,m=%d,p=%d", &t, &m, &p); err != nil ||
			t < 1 || t > 10 || m < 8*1024 || m > 256*1024 || p < 1 {
			return nil, errorf(CodeKeyFile, "unsupported KDF parameters")
		}
		salt, err1 := base64.StdEncoding.DecodeString(block.Headers["Salt"])
		nonce, err2 := base64.StdEncoding.DecodeString(block.Headers["Nonce"])
		if err1 != nil || err2 != nil || len(salt) < 16 || len(nonce) != 12 {
			return nil, errorf(CodeKeyFile, "bad salt or nonce")
		}
		aead, err := keyFileAEAD(pw, salt, t, m, p)
		if err != nil {
			return nil, err
		}
		der, err = aead.Open(nil, nonce, block.Bytes, keyFileAAD(block.Headers))
		if err != nil {
			return nil, errorf(CodeKeyFile, "wrong passphrase or corrupted key file")
		}
		defer wipe(der)
	default:
		return nil, errorf(CodeKeyFile, "unexpected PEM block %q", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errorf(CodeKeyFile, "key is not PKCS#8")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errorf(CodeKeyFile, "key cannot sign")
	}
	return s, nil
}

func keyFileAEAD(pw, salt []byte, t, m uint32, p uint8) (cipher.AEAD, error) {
	k := argon2.IDKey(pw, salt, t, m, p, 32)
	defer wipe(k)
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, wrap(CodeKeyFile, err, "cipher")
	}
	return cipher.NewGCM(blk)
}

func keyFileAAD(h map[string]string) []byte {
	return []byte("phix-pki-key-v1\x00" + h["KDF"] + "\x00" + h["Salt"] + "\x00" + h["Nonce"] + "\x00" + strconv.Itoa(0))
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
