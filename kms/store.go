package kms

import (
	"context"
	"time"
)

// Store keeps the state of the kms: KEKs and their versions (with backend
// handles and wrapped secrets), wrapped data keys, rotation progress,
// custodians, used approval nonces and the key-operation log. kms/sqlstore
// implements it on SQLite and PostgreSQL; both pass kms/kmstest.
//
// Errors: ErrNotFound, ErrExists and ErrConflict (as *Error codes) for the
// conditions named below; anything else is a storage failure.
//
// Deleting or destroying must remove the bytes from the live store (the
// implementations document what remains in journals, WAL and free pages).
type Store interface {
	// Meta reads a named keyring setting (ErrNotFound if unset).
	Meta(ctx context.Context, name string) ([]byte, error)
	// PutMeta sets a keyring setting once; a second set gives ErrExists.
	PutMeta(ctx context.Context, name string, value []byte) error
	// Reseal atomically replaces setting name (which must still equal
	// oldValue) and the handles of the given versions (each must still
	// equal its Old), which must be every version that has a handle: all or
	// nothing, ErrConflict on any mismatch. The local keyring uses it to
	// move to a new master key.
	Reseal(ctx context.Context, name string, oldValue, newValue []byte, handles []HandleChange) error

	// CreateKEK stores a new KEK with its first version, atomically.
	// ErrExists if the KEK exists.
	CreateKEK(ctx context.Context, k KEK, v KEKVersion) error
	// AddKEKVersion stores version v.Version, which must be the KEK's current
	// version plus one, and makes it current (ErrConflict otherwise).
	AddKEKVersion(ctx context.Context, v KEKVersion) error
	// ImportKEKVersion stores version v of KEK k taken from an escrow: it
	// creates k if missing (an existing k must have the same purpose and
	// suite, else ErrConflict), adds v (ErrExists if present) and makes it
	// current if it is newer than the current version.
	ImportKEKVersion(ctx context.Context, k KEK, v KEKVersion) error
	// KEK reads a KEK (ErrNotFound).
	KEK(ctx context.Context, id string) (KEK, error)
	// KEKs lists every KEK, ordered by id.
	KEKs(ctx context.Context) ([]KEK, error)
	// KEKAndVersion reads a KEK and one of its versions (0: the current one)
	// in one round trip. If the KEK exists but not the version, it returns
	// the KEK and ErrNotFound; if the KEK does not exist, a zero KEK and
	// ErrNotFound.
	KEKAndVersion(ctx context.Context, id string, version int) (KEK, KEKVersion, error)
	// KEKVersion reads one version (ErrNotFound).
	KEKVersion(ctx context.Context, id string, version int) (KEKVersion, error)
	// KEKVersions lists a KEK's versions, oldest first.
	KEKVersions(ctx context.Context, id string) ([]KEKVersion, error)
	// SetMinDecryption sets the KEK's min_decryption_version.
	SetMinDecryption(ctx context.Context, id string, version int) error
	// DestroyKEKVersion erases the version's handle and secret and records
	// when (ErrNotFound if no such version).
	DestroyKEKVersion(ctx context.Context, id string, version int, at time.Time) error

	// PutDataKey stores a new data key (ErrExists).
	PutDataKey(ctx context.Context, k DataKey) error
	// DataKey reads a data key (ErrNotFound).
	DataKey(ctx context.Context, id string) (DataKey, error)
	// DeleteDataKey erases a data key (ErrNotFound).
	DeleteDataKey(ctx context.Context, id string) error
	// CountDataKeysBelow counts the data keys of a KEK wrapped under a
	// version lower than version.
	CountDataKeysBelow(ctx context.Context, kek string, version int) (int, error)
	// DataKeysBelow lists up to limit such data keys with id > after, by id.
	DataKeysBelow(ctx context.Context, kek string, version int, after string, limit int) ([]DataKey, error)
	// RewrapDataKey replaces k.ID's wrapping if it is still wrapped under
	// fromVersion; otherwise ErrConflict (someone re-wrapped it already).
	RewrapDataKey(ctx context.Context, k DataKey, fromVersion int) error

	// PutRotation creates or replaces the rotation state of r.KEK.
	PutRotation(ctx context.Context, r Rotation) error
	// Rotation reads the latest rotation state of a KEK (ErrNotFound).
	Rotation(ctx context.Context, kek string) (Rotation, error)

	// PutCustodian enrols a custodian (ErrExists).
	PutCustodian(ctx context.Context, c Custodian) error
	// Custodian reads a custodian (ErrNotFound).
	Custodian(ctx context.Context, id string) (Custodian, error)
	// Custodians lists custodians by id.
	Custodians(ctx context.Context) ([]Custodian, error)

	// UseNonces records approval nonces as spent, all or none: ErrExists
	// (and nothing recorded) if any was spent before. Nonces past their
	// expiry may be forgotten.
	UseNonces(ctx context.Context, nonces []Nonce) error

	// AppendOp appends to the key-operation log and assigns Seq.
	AppendOp(ctx context.Context, op Op) error
	// Ops lists log entries with Seq > after, oldest first, up to limit.
	Ops(ctx context.Context, after int64, limit int) ([]Op, error)

	// Close releases the store.
	Close() error
}

// HandleChange replaces the handle of one KEK version.
type HandleChange struct {
	KEK      string
	Version  int
	Old, New []byte
}

// Nonce is a spent approval nonce and the expiry of its approval.
type Nonce struct {
	Value   string
	Expires time.Time
}

// Auditor receives every key operation. The default, StoreAuditor, appends
// to the Store's own log; the tamper-evident audit log plugs in here later.
// Implementations must not fail open: an error makes the operation report it.
type Auditor interface {
	Record(ctx context.Context, op Op) error
}

// StoreAuditor is the default Auditor: the store's key-operation log.
type StoreAuditor struct{ Store Store }

// Record implements Auditor.
func (a StoreAuditor) Record(ctx context.Context, op Op) error { return a.Store.AppendOp(ctx, op) }
