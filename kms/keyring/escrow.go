package keyring

import (
	"encoding/json"

	"golang.org/x/crypto/argon2"

	"phix/kms"
	"phix/suite"
)

// EscrowKeyFile is an escrow recipient key (the key KEK exports are wrapped
// for) as kept offline, its private key sealed under a passphrase.
type EscrowKeyFile struct {
	Suite  string        `json:"suite"`
	Public []byte        `json:"public"`
	Argon2 *Argon2Params `json:"argon2,omitempty"`
	Salt   []byte        `json:"salt,omitempty"`
	Sealed []byte        `json:"sealed,omitempty"`
}

func escrowAAD(suiteID string, public []byte) []byte {
	return append([]byte("phix-escrow-key-v1\x00"+suiteID+"\x00"), public...)
}

// NewEscrowKey makes an escrow recipient key pair for suiteID, sealed under
// passphrase (at least 12 characters). cost nil means DefaultArgon2.
func NewEscrowKey(suiteID string, passphrase []byte, cost *Argon2Params) (EscrowKeyFile, error) {
	s, err := suite.Lookup(suite.ID(suiteID))
	if err != nil {
		return EscrowKeyFile{}, kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", suiteID)
	}
	if len(passphrase) < 12 {
		return EscrowKeyFile{}, kms.Errorf(kms.CodeBadInput, "escrow passphrase must be at least 12 characters")
	}
	rk, err := s.GenerateRecipientKey()
	if err != nil {
		return EscrowKeyFile{}, kms.Wrapf(kms.CodeBackend, err, "generate escrow key")
	}
	priv := rk.Bytes()
	defer suite.Wipe(priv)
	a := DefaultArgon2
	if cost != nil {
		a = *cost
	}
	f := EscrowKeyFile{Suite: suiteID, Public: rk.Public().Bytes(), Argon2: &a, Salt: make([]byte, 16)}
	randRead(f.Salt)
	k := argon2.IDKey(passphrase, f.Salt, a.Time, a.MemKiB, a.Threads, uint32(s.AEADKeySize()))
	defer suite.Wipe(k)
	f.Sealed, err = aeadSeal(s, k, priv, escrowAAD(suiteID, f.Public))
	return f, err
}

// RecipientKey opens the escrow key with passphrase (kms.ErrWrongMasterKey
// if wrong).
func (f EscrowKeyFile) RecipientKey(passphrase []byte) (suite.RecipientKey, error) {
	s, err := suite.Lookup(suite.ID(f.Suite))
	if err != nil {
		return nil, kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", f.Suite)
	}
	a := f.Argon2
	if a == nil || len(f.Salt) < 16 || a.Time == 0 || a.Time > 64 || a.Threads == 0 || a.MemKiB > 4<<20 || len(f.Sealed) == 0 {
		return nil, kms.Errorf(kms.CodeBadInput, "escrow key file has bad parameters")
	}
	k := argon2.IDKey(passphrase, f.Salt, a.Time, a.MemKiB, a.Threads, uint32(s.AEADKeySize()))
	defer suite.Wipe(k)
	priv, err := aeadOpen(s, k, f.Sealed, escrowAAD(f.Suite, f.Public))
	if err != nil {
		return nil, kms.Errorf(kms.CodeWrongMasterKey, "wrong passphrase for the escrow key")
	}
	defer suite.Wipe(priv)
	rk, err := s.ParseRecipientKey(priv)
	if err != nil || !suite.Equal(rk.Public().Bytes(), f.Public) {
		return nil, kms.Errorf(kms.CodeBadInput, "escrow key file holds no matching private key")
	}
	return rk, nil
}

// ParseEscrowKeyFile reads an escrow key file.
func ParseEscrowKeyFile(b []byte) (EscrowKeyFile, error) {
	var f EscrowKeyFile
	if err := json.Unmarshal(b, &f); err != nil || f.Suite == "" || len(f.Public) == 0 {
		return EscrowKeyFile{}, kms.Errorf(kms.CodeBadInput, "not an escrow key file")
	}
	return f, nil
}
