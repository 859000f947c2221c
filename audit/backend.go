package audit

import (
	"context"
	"errors"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Backend is the storage of the log: events, the tree's stored hashes (in the
// tlog storage order, so proofs need no recomputation), checkpoints, verifier
// keys and SIEM cursors. Implementations: audit/auditsqlite and audit/auditpg;
// both pass audit/audittest. Tables are prefixed audit_, so a deployment may
// share the database with the FHIR store.
type Backend interface {
	// Append runs build and writes its batch in one transaction that excludes
	// every other writer of the same database (other processes included).
	// build gets the current tree size and a reader of the stored hashes inside
	// that transaction. Either the whole batch is durable when Append returns
	// nil, or none of it is written.
	Append(ctx context.Context, build func(size int64, r tlog.HashReader) (*Batch, error)) error

	// Size is the number of events (leaves) in the log.
	Size(ctx context.Context) (int64, error)
	// ReadHashes returns the stored hashes at the given storage indexes.
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// HashRange returns the stored hashes with storage index in [from, to), in
	// order; it stops early (without error) at the first missing index.
	HashRange(ctx context.Context, from, to int64) ([]tlog.Hash, error)
	// Events returns up to limit records with index > after, in index order.
	Events(ctx context.Context, after int64, limit int) ([]Record, error)
	// Event returns the record at index, or ErrNotFound.
	Event(ctx context.Context, index int64) (Record, error)
	// Search returns records matching q, newest first.
	Search(ctx context.Context, q Query) ([]Record, error)
	// Stats counts rows, for verification: events, stored hashes, max index+1.
	Stats(ctx context.Context) (Stats, error)

	// AddCheckpoint stores a signed checkpoint of the given size; a second
	// checkpoint of the same size is ignored.
	AddCheckpoint(ctx context.Context, size int64, note []byte, at time.Time) error
	// LatestCheckpoint returns the checkpoint with the largest size, or ErrNotFound.
	LatestCheckpoint(ctx context.Context) (StoredCheckpoint, error)
	// Checkpoints returns every checkpoint, by size ascending.
	Checkpoints(ctx context.Context) ([]StoredCheckpoint, error)

	// PutKey records a checkpoint verifier key (Signer.VerifierKey) under its
	// id (Signer.KeyID); an id already present is left alone.
	PutKey(ctx context.Context, id, vkey string) error
	// Keys returns every recorded verifier key.
	Keys(ctx context.Context) ([]string, error)

	// Cursor returns the last index delivered to sink, or -1.
	Cursor(ctx context.Context, sink string) (int64, error)
	// SetCursor records that every event up to index was delivered to sink.
	SetCursor(ctx context.Context, sink string, index int64) error

	// Prune deletes the bodies and search columns of the longest prefix of
	// events whose time is before cutoff, keeping their stored hashes. It
	// returns the number of events pruned.
	Prune(ctx context.Context, cutoff time.Time) (int64, error)

	// Close releases the database.
	Close() error
}

// ErrNotFound: no such event or checkpoint.
var ErrNotFound = errors.New("audit: not found")

// Batch is what one Append writes.
type Batch struct {
	// Records are the new events, with consecutive indexes from the old size.
	Records []Record
	// Hashes are the new stored hashes, at consecutive storage indexes from
	// tlog.StoredHashCount(old size).
	Hashes []tlog.Hash
}

// Record is one stored event.
type Record struct {
	Index int64
	Time  time.Time
	// Body is the canonical JSON; nil once pruned.
	Body []byte
	// Search columns, derived from the body; empty once pruned.
	Action  string
	Outcome string
	Patient string
	Agent   string
	Entity  string
	Alert   string
}

// Pruned reports whether the body was removed by retention.
func (r *Record) Pruned() bool { return r.Body == nil }

// Query is an AuditEvent search. Empty fields do not filter.
type Query struct {
	Actions  []string // any of
	Outcomes []string // any of
	Alerts   []string // any of
	Patient  string
	Agent    string
	Entity   string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	Before   int64     // only index < Before (paging); 0 means no bound
	Limit    int
}

// Stats are row counts used to check the storage invariants.
type Stats struct {
	Events   int64 // rows in audit_events
	Hashes   int64 // rows in audit_hashes
	MaxIndex int64 // largest event index, -1 when empty
}

// StoredCheckpoint is a signed checkpoint as stored.
type StoredCheckpoint struct {
	Size int64
	Note []byte
	At   time.Time
}
