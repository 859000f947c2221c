package kms

import (
	"context"
	"crypto/rand"
	"errors"

	"phix/suite"
)

// DataKind says what a data key protects.
type DataKind string

// The kinds of data keys.
const (
	KindPatient DataKind = "patient" // all of one patient's sealed fields
	KindFile    DataKind = "file"    // one file or transfer payload
)

// DataKeyID returns the id of a data key. name must be an opaque id (a FHIR
// logical id, a UUID), never an identifier that is itself PHI such as an MRN:
// ids appear in the operation log.
func DataKeyID(hospital string, kind DataKind, name string) (string, error) {
	if err := checkHospital(hospital); err != nil {
		return "", err
	}
	if kind != KindPatient && kind != KindFile {
		return "", Errorf(CodeBadInput, "data key kind must be patient or file")
	}
	if !nameRE.MatchString(name) {
		return "", Errorf(CodeBadInput, "data key name must match %s", nameRE)
	}
	return hospital + "/" + string(kind) + "/" + name, nil
}

// NewDataKey makes a random data key for the hospital's suite, stores it
// wrapped under the current data KEK version, and returns it. ErrExists if
// the id is taken.
func (m *Manager) NewDataKey(ctx context.Context, hospital string, kind DataKind, name string) ([]byte, error) {
	id, err := DataKeyID(hospital, kind, name)
	if err != nil {
		return nil, err
	}
	k, v, err := m.currentVersion(ctx, hospital, PurposeData)
	if err != nil {
		return nil, err
	}
	s, err := lookupSuite(k.Suite)
	if err != nil {
		return nil, err
	}
	key := make([]byte, s.AEADKeySize())
	_, _ = rand.Read(key)
	blob, err := m.wrapWith(ctx, k, v, id, key)
	stored := false
	if err == nil {
		err = m.st.PutDataKey(ctx, DataKey{ID: id, KEK: k.ID, KEKVersion: v.Version, Wrapped: blob, Created: m.now().UTC()})
		stored = err == nil
	}
	if err := m.record(ctx, Op{Action: "create-data-key", Key: id, Version: v.Version}, err); err != nil {
		if stored {
			// Unrecorded keys must not exist: nothing was sealed under it yet.
			_ = m.st.DeleteDataKey(context.WithoutCancel(ctx), id)
		}
		suite.Wipe(key)
		return nil, err
	}
	return key, nil
}

// EnsureDataKey returns the stored data key, creating it first if there is
// none (safe against a concurrent creator: the loser reads the winner's).
func (m *Manager) EnsureDataKey(ctx context.Context, hospital string, kind DataKind, name string) ([]byte, error) {
	k, err := m.DataKey(ctx, hospital, kind, name)
	if !errors.Is(err, ErrNotFound) {
		return k, err
	}
	k, err = m.NewDataKey(ctx, hospital, kind, name)
	if errors.Is(err, ErrExists) {
		return m.DataKey(ctx, hospital, kind, name)
	}
	return k, err
}

// DataKey returns a stored data key, unwrapped.
func (m *Manager) DataKey(ctx context.Context, hospital string, kind DataKind, name string) ([]byte, error) {
	id, err := DataKeyID(hospital, kind, name)
	if err != nil {
		return nil, err
	}
	dk, err := m.st.DataKey(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, Errorf(CodeNotFound, "no data key %s (never created, or destroyed)", id)
		}
		return nil, err
	}
	key, _, err := m.unwrapBlob(ctx, dk.Wrapped, id)
	return key, err
}

// DestroyDataKey erases a data key: everything sealed under it becomes
// undecryptable. With PostgreSQL, old row versions linger until vacuumed;
// the erasure is final once the KEK version it was wrapped under is
// destroyed too (docs/kms.md).
func (m *Manager) DestroyDataKey(ctx context.Context, hospital string, kind DataKind, name string) error {
	id, err := DataKeyID(hospital, kind, name)
	if err != nil {
		return err
	}
	err = m.st.DeleteDataKey(ctx, id)
	if errors.Is(err, ErrNotFound) {
		err = Errorf(CodeNotFound, "no data key %s", id)
	}
	return m.record(ctx, Op{Action: "destroy-data-key", Key: id}, err)
}

// WrapKey wraps a caller-held key (say a per-file key the caller stores next
// to the ciphertext) under the hospital's current data KEK version, labelled
// keyID. The blob unwraps with UnwrapKey(blob, keyID) until its KEK version
// is retired or destroyed; RewrapKey moves it to the current version.
func (m *Manager) WrapKey(ctx context.Context, hospital, keyID string, key []byte) ([]byte, error) {
	if keyID == "" || len(keyID) > maxKeyIDLen {
		return nil, Errorf(CodeBadInput, "key id must be 1..%d bytes", maxKeyIDLen)
	}
	if len(key) == 0 || len(key) > 4096 {
		return nil, Errorf(CodeBadInput, "key must be 1..4096 bytes")
	}
	k, v, err := m.currentVersion(ctx, hospital, PurposeData)
	if err != nil {
		return nil, err
	}
	return m.wrapWith(ctx, k, v, keyID, key)
}

// UnwrapKey unwraps a blob made by WrapKey; keyID must be its label.
func (m *Manager) UnwrapKey(ctx context.Context, blob []byte, keyID string) ([]byte, error) {
	if keyID == "" {
		return nil, Errorf(CodeBadInput, "key id required")
	}
	key, b, err := m.unwrapBlob(ctx, blob, keyID)
	if err != nil {
		return nil, err
	}
	if _, p, err := splitKEKID(b.KEK); err != nil || p != PurposeData {
		suite.Wipe(key)
		return nil, Errorf(CodeWrongPurpose, "wrapped key is not under a data KEK")
	}
	return key, nil
}

// RewrapKey re-wraps a blob under the current version of its KEK without
// exposing the key to the caller.
func (m *Manager) RewrapKey(ctx context.Context, blob []byte, keyID string) ([]byte, error) {
	key, err := m.UnwrapKey(ctx, blob, keyID)
	if err != nil {
		return nil, err
	}
	defer suite.Wipe(key)
	b, _ := ParseBlob(blob)
	h, _, _ := splitKEKID(b.KEK)
	return m.WrapKey(ctx, h, keyID, key)
}
