package kms

import "context"

// KEKRef names one KEK version for a Backend.
type KEKRef struct {
	KEK     string // "<hospital>/<purpose>"
	Version int
	Suite   string
}

// Backend performs the operations with KEK material. The material never
// leaves it except through ExportKEK, which the Manager only calls under dual
// control. Implementations: kms/keyring (local, sealed by a master key) and
// kms/pkcs11 (an HSM; the material never leaves the token).
type Backend interface {
	// Name is recorded in every wrapped blob and in the keyring ("local", "pkcs11").
	Name() string
	// NewKEK creates key material for ref and returns the handle to persist
	// (sealed material, or the label of an HSM object). The handle itself
	// must be safe to store.
	NewKEK(ctx context.Context, ref KEKRef) (handle []byte, err error)
	// Wrap encrypts key under the KEK, binding aad.
	Wrap(ctx context.Context, ref KEKRef, handle, key, aad []byte) ([]byte, error)
	// Unwrap reverses Wrap; a wrong KEK, aad or a tampered payload gives
	// ErrUnwrapFailed.
	Unwrap(ctx context.Context, ref KEKRef, handle, payload, aad []byte) ([]byte, error)
	// DestroyKEK destroys the material behind handle (for an HSM, the object).
	// Destroying something already gone is not an error.
	DestroyKEK(ctx context.Context, ref KEKRef, handle []byte) error
	// ExportKEK returns the raw KEK material, or ErrNotExportable.
	ExportKEK(ctx context.Context, ref KEKRef, handle []byte) ([]byte, error)
}

// Importer is a Backend that can take in KEK material from an escrow export
// (ExportKEK), for disaster recovery. The local keyring implements it.
type Importer interface {
	// ImportKEK stores material as the KEK version ref and returns its handle.
	ImportKEK(ctx context.Context, ref KEKRef, material []byte) (handle []byte, err error)
}
