package kms

import (
	"context"
	"crypto/hkdf"
	"regexp"

	"phix/suite"
)

// derivedKeySize is the length of every derived key and of the HMAC and
// blind-index master secrets: 48 bytes (384 bits), as seed 002 specifies.
const derivedKeySize = 48

// Info strings of the derivations (docs/kms.md). They are part of the
// on-disk contract: changing one changes every derived key.
const (
	infoPatientHMACPrefix = "FHIR-HMAC"
	infoPatientHMACSuffix = "v1"
	infoBlindIndex        = "phix-blind-index-v1"
)

var (
	fhirIDRE   = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	fhirTypeRE = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)
	paramRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
)

// DerivedKey is a key derived from a versioned secret. Callers record Suite,
// KEK and Version next to what they compute with Key so they can derive the
// same key later (DeriveHMACKeyAt) after a rotation.
type DerivedKey struct {
	Key     []byte
	Suite   string
	KEK     string
	Version int
}

// PatientHMACKey derives the per-patient HMAC key of seed 002 from the
// current version of the hospital's HMAC KEK:
//
//	patient_hmac_key = HKDF-Expand(PRK=master_hmac_key,
//	                               info="FHIR-HMAC" || patient_id || "v1", L=48)
//
// HKDF runs over the suite hash (SHA-256 for intl, SM3 for gm).
func (m *Manager) PatientHMACKey(ctx context.Context, hospital, patientID string) (DerivedKey, error) {
	return m.PatientHMACKeyAt(ctx, hospital, 0, patientID)
}

// PatientHMACKeyAt is PatientHMACKey with version n of the HMAC KEK (0: current).
func (m *Manager) PatientHMACKeyAt(ctx context.Context, hospital string, n int, patientID string) (DerivedKey, error) {
	if !fhirIDRE.MatchString(patientID) {
		return DerivedKey{}, Errorf(CodeBadInput, "patient id must be a FHIR id")
	}
	master, k, n, err := m.versionSecret(ctx, hospital, PurposeHMAC, n)
	if err != nil {
		return DerivedKey{}, err
	}
	s, err := lookupSuite(k.Suite)
	if err != nil {
		return DerivedKey{}, err
	}
	key, err := expand(s, master, infoPatientHMACPrefix+patientID+infoPatientHMACSuffix)
	if err != nil {
		return DerivedKey{}, err
	}
	return DerivedKey{Key: key, Suite: k.Suite, KEK: k.ID, Version: n}, nil
}

// DeriveHMACKey derives the per-resource HMAC key of seed 002 from the
// current HMAC KEK version:
//
//	resource_hmac_key = HKDF-Expand(PRK=patient_hmac_key,
//	                                info=resource_type || resource_id, L=48)
//
// resourceType is a FHIR resource type name and resourceID a FHIR id.
func (m *Manager) DeriveHMACKey(ctx context.Context, hospital, patientID, resourceType, resourceID string) (DerivedKey, error) {
	return m.DeriveHMACKeyAt(ctx, hospital, 0, patientID, resourceType, resourceID)
}

// DeriveHMACKeyAt is DeriveHMACKey with version n of the HMAC KEK (0: current),
// to verify HMACs computed before a rotation.
func (m *Manager) DeriveHMACKeyAt(ctx context.Context, hospital string, n int, patientID, resourceType, resourceID string) (DerivedKey, error) {
	if !fhirTypeRE.MatchString(resourceType) || !fhirIDRE.MatchString(resourceID) {
		return DerivedKey{}, Errorf(CodeBadInput, "resource type and id must be a FHIR type name and id")
	}
	pk, err := m.PatientHMACKeyAt(ctx, hospital, n, patientID)
	if err != nil {
		return DerivedKey{}, err
	}
	defer suite.Wipe(pk.Key)
	s, err := lookupSuite(pk.Suite)
	if err != nil {
		return DerivedKey{}, err
	}
	key, err := DeriveResourceHMACKey(s, pk.Key, resourceType, resourceID)
	if err != nil {
		return DerivedKey{}, err
	}
	return DerivedKey{Key: key, Suite: pk.Suite, KEK: pk.KEK, Version: pk.Version}, nil
}

// DeriveResourceHMACKey is the second step of seed 002's derivation, for a
// caller that caches a patient's HMAC key: HKDF-Expand(PRK=patientKey,
// info=resource_type || resource_id, L=48).
func DeriveResourceHMACKey(s suite.Suite, patientKey []byte, resourceType, resourceID string) ([]byte, error) {
	return expand(s, patientKey, resourceType+resourceID)
}

// DeriveBlindIndexKey derives the key of the blind index of one search
// parameter of one resource type from the hospital's blind-index KEK version
// n (0: current):
//
//	HKDF-Expand(PRK=blind_index_master,
//	            info="phix-blind-index-v1" || 0x00 || resource_type || 0x00 || param, L=48)
func (m *Manager) DeriveBlindIndexKey(ctx context.Context, hospital string, n int, resourceType, param string) (DerivedKey, error) {
	if !fhirTypeRE.MatchString(resourceType) || !paramRE.MatchString(param) {
		return DerivedKey{}, Errorf(CodeBadInput, "resource type and search parameter name are malformed")
	}
	master, k, n, err := m.versionSecret(ctx, hospital, PurposeBlindIndex, n)
	if err != nil {
		return DerivedKey{}, err
	}
	s, err := lookupSuite(k.Suite)
	if err != nil {
		return DerivedKey{}, err
	}
	key, err := expand(s, master, infoBlindIndex+"\x00"+resourceType+"\x00"+param)
	if err != nil {
		return DerivedKey{}, err
	}
	return DerivedKey{Key: key, Suite: k.Suite, KEK: k.ID, Version: n}, nil
}

func expand(s suite.Suite, prk []byte, info string) ([]byte, error) {
	k, err := hkdf.Expand(s.NewHash, prk, info, derivedKeySize)
	if err != nil {
		return nil, Errorf(CodeBackend, "key derivation failed")
	}
	return k, nil
}
