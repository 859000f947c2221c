package keyring

import (
	"crypto/rand"
	"encoding/json"

	"golang.org/x/crypto/argon2"

	"phix/kms"
	"phix/suite"
)

// CustodianKeyFile is a key custodian's signing key as kept on disk, its
// private key sealed under a passphrase (argon2id, then the suite AEAD). The
// kms never sees it; custodians use it to sign approvals.
type CustodianKeyFile struct {
	ID     string        `json:"id"`
	Suite  string        `json:"suite"`
	Public []byte        `json:"public"`
	Argon2 *Argon2Params `json:"argon2,omitempty"`
	Salt   []byte        `json:"salt,omitempty"`
	Sealed []byte        `json:"sealed,omitempty"`  // nonce || AEAD(private key)
	Clear  []byte        `json:"private,omitempty"` // only with no passphrase
}

func custodianAAD(id, suiteID string) []byte {
	return []byte("phix-custodian-key-v1\x00" + id + "\x00" + suiteID)
}

// NewCustodianKey makes a signing key for custodian id in suite suiteID and
// its key file, sealed under passphrase (nil: kept in the clear, for keys
// that live on an encrypted token). cost nil means DefaultArgon2.
func NewCustodianKey(id, suiteID string, passphrase []byte, cost *Argon2Params) (CustodianKeyFile, suite.SigningKey, error) {
	s, err := suite.Lookup(suite.ID(suiteID))
	if err != nil {
		return CustodianKeyFile{}, nil, kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", suiteID)
	}
	sk, err := s.GenerateSigningKey()
	if err != nil {
		return CustodianKeyFile{}, nil, kms.Wrapf(kms.CodeBackend, err, "generate custodian key")
	}
	f := CustodianKeyFile{ID: id, Suite: suiteID, Public: sk.Public().Bytes()}
	priv := sk.Bytes()
	defer suite.Wipe(priv)
	if passphrase == nil {
		f.Clear = append([]byte(nil), priv...)
		return f, sk, nil
	}
	if len(passphrase) < 12 {
		return CustodianKeyFile{}, nil, kms.Errorf(kms.CodeBadInput, "custodian passphrase must be at least 12 characters")
	}
	a := DefaultArgon2
	if cost != nil {
		a = *cost
	}
	f.Argon2, f.Salt = &a, make([]byte, 16)
	randRead(f.Salt)
	k := argon2.IDKey(passphrase, f.Salt, a.Time, a.MemKiB, a.Threads, uint32(s.AEADKeySize()))
	defer suite.Wipe(k)
	f.Sealed, err = aeadSeal(s, k, priv, custodianAAD(id, suiteID))
	return f, sk, err
}

// SigningKey opens the key file with passphrase. A wrong passphrase gives
// kms.ErrWrongMasterKey.
func (f CustodianKeyFile) SigningKey(passphrase []byte) (suite.SigningKey, error) {
	s, err := suite.Lookup(suite.ID(f.Suite))
	if err != nil {
		return nil, kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", f.Suite)
	}
	var priv []byte
	switch {
	case f.Sealed != nil:
		if f.Argon2 == nil || len(f.Salt) < 16 || f.Argon2.Time == 0 || f.Argon2.Time > 64 || f.Argon2.Threads == 0 || f.Argon2.MemKiB > 4<<20 {
			return nil, kms.Errorf(kms.CodeBadInput, "custodian key file has bad parameters")
		}
		if passphrase == nil {
			return nil, kms.Errorf(kms.CodeWrongMasterKey, "custodian key file is sealed: passphrase required")
		}
		a := f.Argon2
		k := argon2.IDKey(passphrase, f.Salt, a.Time, a.MemKiB, a.Threads, uint32(s.AEADKeySize()))
		defer suite.Wipe(k)
		priv, err = aeadOpen(s, k, f.Sealed, custodianAAD(f.ID, f.Suite))
		if err != nil {
			return nil, kms.Errorf(kms.CodeWrongMasterKey, "wrong passphrase for custodian key %s", f.ID)
		}
		defer suite.Wipe(priv)
	case f.Clear != nil:
		priv = f.Clear
	default:
		return nil, kms.Errorf(kms.CodeBadInput, "custodian key file holds no private key")
	}
	sk, err := s.ParseSigningKey(priv)
	if err != nil {
		return nil, kms.Errorf(kms.CodeBadInput, "custodian key file holds no usable private key")
	}
	if !suite.Equal(sk.Public().Bytes(), f.Public) {
		return nil, kms.Errorf(kms.CodeBadInput, "custodian key file: private and public keys do not match")
	}
	return sk, nil
}

// ParseCustodianKeyFile reads a key file (or its public part).
func ParseCustodianKeyFile(b []byte) (CustodianKeyFile, error) {
	var f CustodianKeyFile
	if err := json.Unmarshal(b, &f); err != nil || f.ID == "" || f.Suite == "" || len(f.Public) == 0 {
		return CustodianKeyFile{}, kms.Errorf(kms.CodeBadInput, "not a custodian key file")
	}
	return f, nil
}

// PublicOnly returns the file without its private part, for enrolment.
func (f CustodianKeyFile) PublicOnly() CustodianKeyFile {
	return CustodianKeyFile{ID: f.ID, Suite: f.Suite, Public: f.Public}
}

func randRead(b []byte) { _, _ = rand.Read(b) }
