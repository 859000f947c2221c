//go:build !cgo

package pkcs11

import (
	"context"

	"phix/kms"
)

// Backend is unavailable in a build without cgo: PKCS#11 modules are C
// libraries.
type Backend struct{}

var _ kms.Backend = (*Backend)(nil)

func errNoCgo() error {
	return kms.Errorf(kms.CodeUnsupported, "this phix was built without cgo: the PKCS#11 backend needs it (CGO_ENABLED=1)")
}

// Open fails: this build has no cgo.
func Open(Config) (*Backend, error) { return nil, errNoCgo() }

// Close does nothing.
func (*Backend) Close() {}

// Name implements kms.Backend.
func (*Backend) Name() string { return Name }

// NewKEK implements kms.Backend.
func (*Backend) NewKEK(context.Context, kms.KEKRef) ([]byte, error) { return nil, errNoCgo() }

// Wrap implements kms.Backend.
func (*Backend) Wrap(context.Context, kms.KEKRef, []byte, []byte, []byte) ([]byte, error) {
	return nil, errNoCgo()
}

// Unwrap implements kms.Backend.
func (*Backend) Unwrap(context.Context, kms.KEKRef, []byte, []byte, []byte) ([]byte, error) {
	return nil, errNoCgo()
}

// DestroyKEK implements kms.Backend.
func (*Backend) DestroyKEK(context.Context, kms.KEKRef, []byte) error { return errNoCgo() }

// ExportKEK implements kms.Backend.
func (*Backend) ExportKEK(context.Context, kms.KEKRef, []byte) ([]byte, error) {
	return nil, errNoCgo()
}

// Exists implements the erasure check.
func (*Backend) Exists(context.Context, []byte) (bool, error) { return false, errNoCgo() }
