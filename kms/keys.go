package kms

import (
	"context"
	"errors"

	"phix/suite"
)

// Signer returns the hospital's signing key of version n (0: current) and the
// version used. Keep the version with the signature (it is in the key id).
func (m *Manager) Signer(ctx context.Context, hospital string, n int) (suite.SigningKey, int, error) {
	secret, k, n, err := m.versionSecret(ctx, hospital, PurposeSigning, n)
	if err != nil {
		return nil, 0, err
	}
	s, err := lookupSuite(k.Suite)
	if err != nil {
		return nil, 0, err
	}
	sk, err := s.ParseSigningKey(secret)
	if err != nil {
		return nil, 0, Errorf(CodeBackend, "stored signing key of %s version %d does not parse", k.ID, n)
	}
	return sk, n, nil
}

// RecipientKey returns the hospital's private key of version n (0: current)
// for unwrapping keys other hospitals wrapped for it.
func (m *Manager) RecipientKey(ctx context.Context, hospital string, n int) (suite.RecipientKey, int, error) {
	secret, k, n, err := m.versionSecret(ctx, hospital, PurposeRecipient, n)
	if err != nil {
		return nil, 0, err
	}
	s, err := lookupSuite(k.Suite)
	if err != nil {
		return nil, 0, err
	}
	rk, err := s.ParseRecipientKey(secret)
	if err != nil {
		return nil, 0, Errorf(CodeBackend, "stored recipient key of %s version %d does not parse", k.ID, n)
	}
	return rk, n, nil
}

// PublicKey is an exported public key of a hospital.
type PublicKey struct {
	Hospital  string  `json:"hospital"`
	Purpose   Purpose `json:"purpose"`
	Suite     string  `json:"suite"`
	Algorithm string  `json:"algorithm"`
	Version   int     `json:"version"`
	KeyID     string  `json:"keyId"`
	Public    []byte  `json:"public"`
}

// PublicKeys returns the public keys (signing and recipient) of every live
// version of a hospital's KEKs, for registration with the coordinator.
func (m *Manager) PublicKeys(ctx context.Context, hospital string) ([]PublicKey, error) {
	if err := checkHospital(hospital); err != nil {
		return nil, err
	}
	var out []PublicKey
	for _, p := range []Purpose{PurposeSigning, PurposeRecipient} {
		k, err := m.st.KEK(ctx, KEKID(hospital, p))
		if errors.Is(err, ErrNotFound) {
			return nil, Errorf(CodeNotFound, "no %s KEK for hospital %s (run phix keys init)", p, hospital)
		} else if err != nil {
			return nil, err
		}
		s, err := lookupSuite(k.Suite)
		if err != nil {
			return nil, err
		}
		vs, err := m.st.KEKVersions(ctx, k.ID)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if !v.Destroyed.IsZero() || v.Version < k.MinDecryption || len(v.Public) == 0 {
				continue
			}
			pk := PublicKey{Hospital: hospital, Purpose: p, Suite: k.Suite, Version: v.Version, Public: v.Public}
			if p == PurposeSigning {
				vk, err := s.ParseVerifyKey(v.Public)
				if err != nil {
					return nil, Errorf(CodeBackend, "stored public key of %s version %d does not parse", k.ID, v.Version)
				}
				pk.Algorithm, pk.KeyID = vk.Algorithm(), vk.KeyID()
			} else {
				rp, err := s.ParseRecipientPublicKey(v.Public)
				if err != nil {
					return nil, Errorf(CodeBackend, "stored public key of %s version %d does not parse", k.ID, v.Version)
				}
				pk.Algorithm, pk.KeyID = s.WrapAlgorithm(), rp.KeyID()
			}
			out = append(out, pk)
		}
	}
	return out, nil
}

// KEKInfo describes a KEK and its versions for listings; no key material.
type KEKInfo struct {
	KEK
	Versions []VersionInfo
	Rotation *Rotation
	DataKeys int // stored data keys below the current version (to re-wrap)
}

// VersionInfo describes one KEK version.
type VersionInfo struct {
	Version   int
	Created   string
	Destroyed string
	Retired   bool
}

// List describes every KEK of the keyring.
func (m *Manager) List(ctx context.Context) ([]KEKInfo, error) {
	ks, err := m.st.KEKs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KEKInfo, 0, len(ks))
	for _, k := range ks {
		info := KEKInfo{KEK: k}
		vs, err := m.st.KEKVersions(ctx, k.ID)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			vi := VersionInfo{Version: v.Version, Created: v.Created.Format("2006-01-02T15:04:05Z"), Retired: v.Version < k.MinDecryption}
			if !v.Destroyed.IsZero() {
				vi.Destroyed = v.Destroyed.Format("2006-01-02T15:04:05Z")
			}
			info.Versions = append(info.Versions, vi)
		}
		if r, err := m.st.Rotation(ctx, k.ID); err == nil {
			info.Rotation = &r
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if k.Purpose == PurposeData {
			if info.DataKeys, err = m.st.CountDataKeysBelow(ctx, k.ID, k.Current); err != nil {
				return nil, err
			}
		}
		out = append(out, info)
	}
	return out, nil
}
