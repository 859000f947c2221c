package store

import (
	"context"
	"time"

	"phix/fhir/search"
)

// Reindexer is implemented by stores that can rebuild the search index of
// stored resources in place, in bounded batches, while reads and writes go
// on, and that keep the state of reindex jobs (store/reindex runs them).
// Both store/sqlite and store/postgres implement it.
type Reindexer interface {
	// ReindexBatch loads, in one write transaction, up to b.Limit current,
	// non-deleted resources of b.Types (every type when empty) whose
	// internal key is above b.After, in key order, and replaces their index
	// entries with what b.Extract returns for them: all entries when
	// b.Params is empty, else only the entries of those parameter codes
	// (other entries are kept). It returns the last key processed (b.After
	// when none) and how many resources it processed; fewer than b.Limit
	// means the scan has reached the end.
	ReindexBatch(ctx context.Context, b *ReindexBatch) (last int64, n int, err error)
	// CountCurrent counts the current, non-deleted resources of types (every
	// type when empty) whose key is above after.
	CountCurrent(ctx context.Context, types []string, after int64) (int64, error)
	// DropIndex removes every index entry of parameter code from resources
	// of types, in bounded transactions.
	DropIndex(ctx context.Context, types []string, code string) error
	// PutJob stores (inserts or replaces) a job document. Every put gives
	// the job a new change sequence number (see JobsSince) and records
	// whether the job is finished: a document whose top-level JSON "status"
	// is a string other than "running" is finished (it becomes purgeable,
	// see PurgeJobs, counted from this put); any other document is not.
	PutJob(ctx context.Context, id string, doc []byte) error
	// Job returns one job document, or ErrNotFound.
	Job(ctx context.Context, id string) ([]byte, error)
	// Jobs returns every job document by id.
	Jobs(ctx context.Context) (map[string][]byte, error)
	// JobsSince returns the job documents put after change sequence number
	// seq (0: every job) and the newest sequence number among them (seq
	// when there are none). Sequence numbers grow in commit order and are
	// never reused, so a reader that passes the number it got last sees
	// every later put exactly once, whatever it missed meanwhile. Deleted
	// jobs do not appear.
	JobsSince(ctx context.Context, seq int64) (docs map[string][]byte, last int64, err error)
	// FinishedJobs returns the documents of the jobs finished (see PutJob)
	// before before.
	FinishedJobs(ctx context.Context, before time.Time) (map[string][]byte, error)
	// PurgeJobs deletes those of ids that are still finished before before
	// and whose lease (LeaseJob) ended before now; it returns how many it
	// deleted. The condition is checked by the delete itself, so replicas
	// may purge at once, and a job put again meanwhile (resumed) or leased
	// is kept.
	PurgeJobs(ctx context.Context, ids []string, before, now time.Time) (int64, error)
	// LeaseJob gives owner the job's lease until until, if the job has no
	// lease, owner holds it already, or it ended before now; it reports
	// whether owner holds it. One process runs a job at a time among those
	// sharing the database. An until not after now releases owner's lease
	// (true when owner held it).
	LeaseJob(ctx context.Context, id, owner string, now, until time.Time) (bool, error)
}

// ReindexBatch is one step of a reindex: see Reindexer.ReindexBatch.
type ReindexBatch struct {
	Types  []string
	Params []string // parameter codes; empty: every entry
	After  int64
	Limit  int
	// Extract returns the index entries of a record (the current version;
	// its Body is set). It runs inside the write transaction: it must be
	// quick and must not use the store. An error aborts the batch.
	Extract func(rec *Record) ([]search.Entry, error)
}

// MaxReindexBatch bounds ReindexBatch.Limit: a batch holds the write lock
// (SQLite) or row locks (PostgreSQL) for its duration.
const MaxReindexBatch = 2000
