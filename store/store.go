// Package store defines how FHIR resources are kept: versioned records, their
// history and their search index. The implementations are store/sqlite (the
// embedded default) and store/postgres; both pass the contract suite in
// store/storetest.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"phix/fhir/search"
)

// Errors every implementation returns (wrapped or not), so callers can map them
// to HTTP statuses with errors.Is.
var (
	ErrNotFound        = errors.New("store: not found")        // no such resource or version
	ErrDeleted         = errors.New("store: deleted")          // the current version is a deletion
	ErrVersionConflict = errors.New("store: version conflict") // the If-Match precondition failed
	ErrConflict        = errors.New("store: conflict")         // a concurrent writer won; retry
	// ErrInvalid reports a malformed Write, Query or option (empty type or id,
	// a version below 1, an unknown entry type, a NaN number...). The message
	// names the field, never its value.
	ErrInvalid = errors.New("store: invalid input")
	// ErrUnsupported reports a search feature the store does not execute yet
	// (terminology modifiers such as :in/:below on tokens, special
	// parameters, _query, _filter).
	ErrUnsupported = errors.New("store: unsupported search feature")
	// ErrTooMany reports a search refused because it would exceed a limit
	// (included resources, :iterate rounds). It wraps ErrInvalid, so callers
	// that only know ErrInvalid answer 400.
	ErrTooMany = fmt.Errorf("%w: search exceeds a configured limit", ErrInvalid)
)

// Include limits used when a Query leaves them zero.
const (
	DefaultMaxIncluded      = 1000
	DefaultMaxIncludeRounds = 8
)

// DefaultCount is the page size a store uses when Query.Count or
// HistoryOptions.Count is 0. A negative Count returns no records, only the
// total (_summary=count).
const DefaultCount = 100

// Record is one stored version of a resource.
type Record struct {
	Type        string
	ID          string
	Version     int64 // 1, 2, 3... per resource
	LastUpdated time.Time
	Deleted     bool   // a deletion marker; Body is empty
	Body        []byte // the resource JSON exactly as the server wrote it (meta included)
	Method      string // "POST", "PUT", "PATCH" or "DELETE": what made this version
}

// Write is one new version to store.
type Write struct {
	Type string
	ID   string
	// IfVersion, when non-zero, requires the current version to equal it
	// (If-Match); otherwise the write fails with ErrVersionConflict.
	IfVersion int64
	// MustNotExist makes the write fail with ErrVersionConflict when the
	// resource already has a version (create with a client-chosen id).
	MustNotExist bool
	Deleted      bool
	Body         []byte
	Method       string
	// LastUpdated is the time the server stamped into Body's meta; the store
	// records it verbatim so meta.lastUpdated and history agree.
	LastUpdated time.Time
	// Index holds the search entries for this version. The store replaces the
	// resource's previous entries with these (a deletion removes them all).
	Index []search.Entry
	// FullText, when non-nil, is the full-text document (_text, _content)
	// to index instead of tokenizing Body. The FHIR server sets it with
	// field protection on: Body is sealed, so the server tokenizes the
	// plaintext and gives blind tokens (docs/searchable-encryption.md).
	FullText *search.FullTextDoc
	// Version is the version number the server stamped into Body's meta: it
	// must be the current version plus one. The store refuses anything else
	// with ErrConflict, which is what makes concurrent writers safe.
	Version int64
}

// HistoryOptions selects history entries.
type HistoryOptions struct {
	Type  string    // "" for system level
	ID    string    // "" for type or system level
	Since time.Time // zero: no lower bound (exclusive of nothing: lastUpdated >= Since)
	At    time.Time // zero: ignore; else the version current at that instant, per resource
	Count int       // page size
	// Offset skips entries, newest first.
	Offset int
}

// SearchResult is one page of matches plus what was included.
type SearchResult struct {
	Matches  []*Record // current, non-deleted versions, in the query's order
	Included []*Record // _include/_revinclude results, each once, not in Matches
	Total    int       // -1 when not computed (Total mode none)
}

// Reader is the read side, usable inside and outside a transaction.
type Reader interface {
	// Read returns the current version. A deleted resource returns the
	// deletion record and ErrDeleted.
	Read(ctx context.Context, typ, id string) (*Record, error)
	// VRead returns one version.
	VRead(ctx context.Context, typ, id string, version int64) (*Record, error)
	// History returns versions newest first, and the total count of matching
	// versions.
	History(ctx context.Context, opts HistoryOptions) ([]*Record, int, error)
	// Search runs a query over current, non-deleted resources.
	Search(ctx context.Context, q *search.Query) (*SearchResult, error)
}

// Tx is a read-write transaction. Its writes become visible all at once on
// commit, or not at all.
type Tx interface {
	Reader
	// Put stores a new version and returns it as stored.
	Put(ctx context.Context, w *Write) (*Record, error)
}

// Store is a resource store.
type Store interface {
	Reader
	// Tx runs fn in one transaction: commit when fn returns nil, roll back
	// otherwise (fn's error is returned).
	Tx(ctx context.Context, fn func(Tx) error) error
	// Close releases the store's resources.
	Close() error
}
