package keyring

import (
	"bytes"
	"encoding/base64"
	"os"
	"strings"

	"phix/kms"
)

// EnvMasterKey is the environment variable holding the base64 master key.
const EnvMasterKey = "PHIX_MASTER_KEY"

// MasterKeySize is the size of a raw master key.
const MasterKeySize = 32

// Master is the secret that seals the keyring: either a raw 32-byte key or a
// passphrase stretched with argon2id and the keyring's salt.
type Master struct {
	key        []byte
	passphrase []byte
}

// MasterKey wraps a raw 32-byte master key.
func MasterKey(key []byte) (Master, error) {
	if len(key) != MasterKeySize {
		return Master{}, kms.Errorf(kms.CodeBadInput, "master key must be %d bytes, got %d", MasterKeySize, len(key))
	}
	return Master{key: bytes.Clone(key)}, nil
}

// MasterKeyBase64 decodes a base64 (standard or URL, padded or not) master key.
func MasterKeyBase64(s string) (Master, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			return MasterKey(k)
		}
	}
	return Master{}, kms.Errorf(kms.CodeBadInput, "master key is not base64")
}

// MasterKeyFromEnv reads PHIX_MASTER_KEY.
func MasterKeyFromEnv() (Master, error) {
	v, ok := os.LookupEnv(EnvMasterKey)
	if !ok || v == "" {
		return Master{}, kms.Errorf(kms.CodeBadInput, "%s is not set", EnvMasterKey)
	}
	return MasterKeyBase64(v)
}

// MasterKeyFromFile reads a master key file: base64 text or 32 raw bytes. The
// file must not be readable by group or others.
func MasterKeyFromFile(path string) (Master, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Master{}, kms.Wrapf(kms.CodeBadInput, err, "master key file")
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Master{}, kms.Errorf(kms.CodeBadInput, "master key file %s is accessible by group or others (chmod 600)", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Master{}, kms.Wrapf(kms.CodeBadInput, err, "master key file")
	}
	if len(b) == MasterKeySize {
		return MasterKey(b)
	}
	return MasterKeyBase64(string(b))
}

// Passphrase uses a passphrase as the master secret.
func Passphrase(p string) (Master, error) {
	if len(p) < 12 {
		return Master{}, kms.Errorf(kms.CodeBadInput, "passphrase must be at least 12 characters")
	}
	return Master{passphrase: []byte(p)}, nil
}

// IsPassphrase reports whether m is a passphrase.
func (m Master) IsPassphrase() bool { return m.passphrase != nil }
