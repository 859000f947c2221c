// Package auditpg stores the audit log in PostgreSQL (pgx/v5): the scale-out
// backend shared by coordinator replicas. Appends take a transaction-scoped
// advisory lock, so writers in any number of processes serialise on the
// tree's right edge; batches are written with COPY.
package auditpg

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"phix/audit"
	"phix/audit/internal/auditsql"
)

// appendLock is the advisory lock key of the audit tree ("phixaudt").
const appendLock int64 = 0x7068697861756474

// Store is an audit.Backend over a PostgreSQL database.
type Store struct {
	auditsql.Tables
	pool *pgxpool.Pool
	next atomic.Int64 // index after this Store's last commit, -1 when unknown
}

var _ audit.Backend = (*Store)(nil)

// Open connects to dsn and creates the audit tables if needed.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("auditpg: malformed DSN")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("auditpg: connect: %w", err)
	}
	// One session lock keeps concurrent schema creation from racing.
	for _, stmt := range auditsql.Postgres.Schema() {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			var retry error
			// CREATE ... IF NOT EXISTS can still race on the catalog; try once more.
			if _, retry = pool.Exec(ctx, stmt); retry != nil {
				pool.Close()
				return nil, fmt.Errorf("auditpg: schema: %w", err)
			}
		}
	}
	st := &Store{pool: pool, Tables: auditsql.Tables{Dialect: auditsql.Postgres, Conn: pgDB{pool}, Name: "auditpg"}}
	st.next.Store(-1)
	return st, nil
}

// Close closes the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }

// Pool returns the pool (tests use it to tamper with the tables).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func size(ctx context.Context, q querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, "SELECT COALESCE(MAX(idx)+1, 0) FROM audit_events").Scan(&n)
	return n, err
}

func readHashes(ctx context.Context, q querier, idx []int64) ([]tlog.Hash, error) {
	rows, err := q.Query(ctx, "SELECT id, hash FROM audit_hashes WHERE id = ANY($1)", idx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[int64]tlog.Hash, len(idx))
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return nil, err
		}
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("auditpg: stored hash %d malformed", id)
		}
		got[id] = tlog.Hash(h)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("auditpg: stored hash %d missing", x)
		}
		out[i] = h
	}
	return out, nil
}

// Append implements audit.Backend.
//
// Round trips dominate a group commit. After this Store's first commit it
// knows the next index, so it appends optimistically in a single round trip
// (BEGIN, the advisory lock, both inserts and COMMIT pipelined): if another
// writer committed meanwhile, the primary keys on idx and on the hash id fail
// the whole transaction, and the batch is redone under the lock with the size
// read from the database. Committed events are never rewritten,
// so a tree built on the predicted size is correct whenever the insert succeeds.
func (s *Store) Append(ctx context.Context, build func(int64, tlog.HashReader) (*audit.Batch, error)) error {
	if n := s.next.Load(); n >= 0 {
		err := s.appendTx(ctx, n, build)
		if err == nil || !isUniqueViolation(err) {
			return err
		}
		s.next.Store(-1)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.appendTx(ctx, -1, build); err == nil || !isUniqueViolation(err) {
			return err
		}
	}
	return err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// appendTx writes one batch at index n, or, when n < 0, under the advisory
// lock at the size read from the database.
func (s *Store) appendTx(ctx context.Context, n int64, build func(int64, tlog.HashReader) (*audit.Batch, error)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx := conn.Conn()
	var batch pgx.Batch
	var reader querier = s.pool
	if n < 0 {
		if _, err := tx.Exec(ctx, fmt.Sprintf("BEGIN; SELECT pg_advisory_xact_lock(%d)", appendLock)); err != nil {
			return s.abort(conn, err)
		}
		if n, err = size(ctx, tx); err != nil {
			return s.abort(conn, err)
		}
		reader = tx
	} else {
		// The lock keeps this path exclusive with the locked one; a stale n
		// then fails on the primary keys instead of racing.
		batch.Queue("BEGIN")
		batch.Queue("SELECT pg_advisory_xact_lock($1)", appendLock)
	}
	b, err := build(n, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return readHashes(ctx, reader, idx)
	}))
	if err != nil {
		if reader == tx {
			return s.abort(conn, err)
		}
		return err
	}
	// Both inserts go in one round trip (unnest arrays), which matters more
	// than COPY's per-row speed for group-commit-sized batches.
	nr := len(b.Records)
	idx, ts := make([]int64, nr), make([]int64, nr)
	body := make([][]byte, nr)
	cols := [6][]string{}
	for k := range cols {
		cols[k] = make([]string, nr)
	}
	for i, r := range b.Records {
		idx[i], ts[i], body[i] = r.Index, r.Time.UnixMicro(), r.Body
		cols[0][i], cols[1][i], cols[2][i] = r.Action, r.Outcome, r.Alert
		cols[3][i], cols[4][i], cols[5][i] = r.Patient, r.Agent, r.Entity
	}
	base := tlog.StoredHashCount(n)
	hid := make([]int64, len(b.Hashes))
	hval := make([][]byte, len(b.Hashes))
	for i := range b.Hashes {
		hid[i], hval[i] = base+int64(i), b.Hashes[i][:]
	}
	batch.Queue(`INSERT INTO audit_events (idx, ts, body, action, outcome, alert, patient, agent, entity)
		SELECT i, t, b, NULLIF(a, ''), NULLIF(o, ''), NULLIF(al, ''), NULLIF(p, ''), NULLIF(ag, ''), NULLIF(e, '')
		FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
		AS x(i, t, b, a, o, al, p, ag, e)`,
		idx, ts, body, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])
	batch.Queue(`INSERT INTO audit_hashes (id, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, hid, hval)
	batch.Queue("COMMIT")
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return s.abort(conn, err)
	}
	s.next.Store(n + int64(nr))
	return nil
}

// abort rolls back the transaction on conn, or destroys the connection when
// that is impossible (a broken connection must not return to the pool
// inside a transaction).
func (s *Store) abort(conn *pgxpool.Conn, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = conn.Conn().Close(ctx)
	}
	return cause
}

// Size implements audit.Backend.
func (s *Store) Size(ctx context.Context) (int64, error) { return size(ctx, s.pool) }

// ReadHashes implements audit.Backend.
func (s *Store) ReadHashes(ctx context.Context, idx []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, s.pool, idx)
}

// pgDB runs the shared queries on the pool.
type pgDB struct{ pool *pgxpool.Pool }

func (d pgDB) Query(ctx context.Context, q string, args ...any) (auditsql.Rows, error) {
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (d pgDB) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := d.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
