package deid

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"

	"github.com/emmansun/gmsm/sm3"

	"phix/suite"
)

// Keys provides the project keys de-identification needs. kms implements it
// for deployments; StaticKeys serves tests and key files. Keys are returned
// per call so a backend can rotate them; the engine reads them once in New.
type Keys interface {
	// Suite selects the algorithms: intl (HMAC-SHA256, AES-GCM, FF1-AES) or
	// gm (HMAC-SM3, SM4-GCM, FF1-SM4).
	Suite() suite.ID
	// HashKey keys cryptoHash, pseudonyms and date shifts (at least 32 bytes).
	HashKey() ([]byte, error)
	// EncryptionKey keys the encrypt method's AEAD (suite AEAD key size).
	EncryptionKey() ([]byte, error)
	// FF1Key keys format-preserving encryption (16 bytes for SM4; 16, 24 or
	// 32 for AES).
	FF1Key() ([]byte, error)
}

// StaticKeys is a Keys holding fixed bytes.
type StaticKeys struct {
	SuiteID suite.ID
	Hash    []byte
	Enc     []byte
	FF1     []byte
}

// Suite implements Keys.
func (k *StaticKeys) Suite() suite.ID { return k.SuiteID }

// HashKey implements Keys.
func (k *StaticKeys) HashKey() ([]byte, error) { return k.Hash, nil }

// EncryptionKey implements Keys.
func (k *StaticKeys) EncryptionKey() ([]byte, error) { return k.Enc, nil }

// FF1Key implements Keys.
func (k *StaticKeys) FF1Key() ([]byte, error) { return k.FF1, nil }

// DeriveKeys derives the three keys from one project secret with the suite
// KDF (HKDF-SHA256 or HKDF-SM3), each under its own label.
func DeriveKeys(id suite.ID, secret []byte) (*StaticKeys, error) {
	if len(secret) < 32 {
		return nil, errors.New("deid: project secret must be at least 32 bytes")
	}
	s, err := suite.Lookup(id)
	if err != nil {
		return nil, err
	}
	h, err := s.KDF(secret, nil, []byte("phix deid hash v1"), 32)
	if err != nil {
		return nil, err
	}
	e, err := s.KDF(secret, nil, []byte("phix deid aead v1"), s.AEADKeySize())
	if err != nil {
		return nil, err
	}
	f, err := s.KDF(secret, nil, []byte("phix deid ff1 v1"), s.AEADKeySize())
	if err != nil {
		return nil, err
	}
	return &StaticKeys{SuiteID: id, Hash: h, Enc: e, FF1: f}, nil
}

// newMAC is the cryptoHash MAC: HMAC-SHA256 (intl) or HMAC-SM3 (gm). The
// intl suite's own MAC is HMAC-SHA3-384; the issue fixes HMAC-SHA256 here.
func newMAC(id suite.ID, key []byte) func() hash.Hash {
	if id == suite.GM {
		return func() hash.Hash { return hmac.New(sm3.New, key) }
	}
	return func() hash.Hash { return hmac.New(sha256.New, key) }
}
