// Package blob stores ciphertext objects for the transfer coordinator: tus
// style resumable uploads (create, append at an offset, seal) and ranged
// downloads. The Store interface lives here, with its consumer; each backend
// is its own package (blob/fsblob, blob/s3blob) and blob/blobtest holds the
// contract suite every backend passes.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Info describes one object.
type Info struct {
	// Key is the object's key.
	Key string
	// Size is the offset the next Append must use. It never exceeds what
	// survives a crash of the process; after a power loss a store may
	// report less than it acknowledged (fsblob's default defers the data
	// fsync to Seal), never more, and the uploader resends from there.
	Size int64
	// Created is when Create ran.
	Created time.Time
	// Sealed reports whether Seal completed: the object is immutable and readable.
	Sealed bool
}

// Store is a blob store. Implementations are safe for concurrent use on
// different keys; operations on one key are serialized within a process, and
// across processes the caller (the tus handler's upload lock) must serialize
// them.
type Store interface {
	// Create makes an empty, unsealed object. ErrExists if the key is taken.
	Create(ctx context.Context, key string) (Info, error)
	// Append writes all of r at offset, which must equal Size
	// (ErrOffsetMismatch otherwise), and returns the new Size.
	// It is all or nothing: if r fails or the process crashes, Size stays
	// at offset. ErrSealed after Seal.
	Append(ctx context.Context, key string, offset int64, r io.Reader) (int64, error)
	// Stat describes the object. ErrNotFound if absent.
	Stat(ctx context.Context, key string) (Info, error)
	// Seal marks the object complete (for S3: completes the multipart
	// upload). Sealing a sealed object returns its Info again.
	Seal(ctx context.Context, key string) (Info, error)
	// ReadRange returns length bytes from off of a sealed object
	// (ErrNotSealed before Seal; ErrRange if the range is outside the object).
	// length < 0 means to the end.
	ReadRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Delete removes the object, sealed or not. ErrNotFound if absent.
	Delete(ctx context.Context, key string) error
	// DeletePrefix removes every object whose key starts with prefix (which
	// must be non-empty) and returns how many it removed.
	DeletePrefix(ctx context.Context, prefix string) (int, error)
	// List calls fn for every object whose key starts with prefix ("" for
	// all), in key order; an error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Region is the data-residency label the store was configured with
	// (e.g. "cn-north", "us-east"); the coordinator checks it.
	Region() string
}

// Errors every backend returns (wrapped, test with errors.Is). Each has a
// stable code (see Code).
var (
	ErrInvalidKey     = errors.New("BLOB-001 invalid key")
	ErrNotFound       = errors.New("BLOB-002 object not found")
	ErrExists         = errors.New("BLOB-003 object already exists")
	ErrOffsetMismatch = errors.New("BLOB-004 offset does not match the object's size")
	ErrSealed         = errors.New("BLOB-005 object is sealed")
	ErrNotSealed      = errors.New("BLOB-006 object is not sealed")
	ErrRange          = errors.New("BLOB-007 range outside the object")
	ErrCorrupt        = errors.New("BLOB-008 object state is corrupt")
)

// Code returns the stable code ("BLOB-004", ...) of a blob error, or "" for
// other errors.
func Code(err error) string {
	for _, e := range []error{ErrInvalidKey, ErrNotFound, ErrExists, ErrOffsetMismatch, ErrSealed, ErrNotSealed, ErrRange, ErrCorrupt} {
		if errors.Is(err, e) {
			return e.Error()[:8]
		}
	}
	return ""
}

// DeletePrefix is the DeletePrefix every backend shares: it lists the keys
// under prefix with list and deletes them one by one with del, counting those
// that existed. A key already gone is skipped; any other error, or the
// context ending, stops it and reports how many were deleted so far.
func DeletePrefix(ctx context.Context, prefix string, list func(ctx context.Context, prefix string) ([]string, error), del func(ctx context.Context, key string) error) (int, error) {
	if prefix == "" {
		return 0, fmt.Errorf("%w: empty prefix", ErrInvalidKey)
	}
	keys, err := list(ctx, prefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		switch err := del(ctx, k); {
		case err == nil:
			n++
		case errors.Is(err, ErrNotFound):
		default:
			return n, err
		}
	}
	return n, nil
}
