// Package postgres is the scale-out resource store on PostgreSQL (pgx/v5 and
// pgxpool). Every write transaction runs at SERIALIZABLE isolation, so a
// conditional create (search, then create when nothing matched) cannot create
// duplicates under concurrent writers; serialization failures are retried
// inside Tx. Writes are buffered per transaction and sent in one pipelined
// batch (multi-row unnest() inserts) when the transaction commits, when it
// reads, or when the buffer grows large.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"phix/fhir/search"
	"phix/store"
	"phix/store/internal/sqlstore"
)

var dialect = sqlstore.Postgres{}

// migrationLock is the advisory lock key that serializes schema migrations
// across processes ("phixstor" in ASCII).
const migrationLock int64 = 0x7068697873746f72

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool

	pkMu   sync.Mutex
	pkFree []int64 // preallocated resource keys
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a libpq URL or key=value string;
// pool_max_conns and the other pgxpool settings are honoured) and brings the
// schema up to date. Several processes may open the same database at once.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parser's message can quote the DSN, password included.
		return nil, fmt.Errorf("%w: malformed PostgreSQL DSN", store.ErrInvalid)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, sqlstore.DBError("connect", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return sqlstore.DBError("migrate: connect", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return sqlstore.DBError("migrate: lock", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return sqlstore.DBError("migrate: create table", err)
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return sqlstore.DBError("migrate: read version", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("store: postgres schema version %d is newer than this binary (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v)
			return err
		})
		if err != nil {
			return sqlstore.DBError(fmt.Sprintf("migrate: apply %d", v), err)
		}
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// querier adapts a pool or transaction to sqlstore.Querier.
type querier struct {
	q interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (q querier) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	return q.q.Query(ctx, sql, args...)
}

// Read implements store.Reader.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Record, error) {
	return sqlstore.Read(ctx, querier{s.pool}, dialect, typ, id)
}

// VRead implements store.Reader.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Record, error) {
	return sqlstore.VRead(ctx, querier{s.pool}, dialect, typ, id, version)
}

// History implements store.Reader; count and page share one snapshot.
func (s *Store) History(ctx context.Context, o store.HistoryOptions) (recs []*store.Record, total int, err error) {
	err = s.snapshot(ctx, func(q sqlstore.Querier) error {
		recs, total, err = sqlstore.History(ctx, q, dialect, o)
		return err
	})
	return recs, total, err
}

// Search implements store.Reader; count, page and includes share one snapshot.
func (s *Store) Search(ctx context.Context, q *search.Query) (res *store.SearchResult, err error) {
	err = s.snapshot(ctx, func(qr sqlstore.Querier) error {
		res, err = sqlstore.Search(ctx, qr, dialect, q)
		return err
	})
	return res, err
}

func (s *Store) snapshot(ctx context.Context, fn func(sqlstore.Querier) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return sqlstore.DBError("begin read", err)
	}
	defer tx.Rollback(context.Background())
	if err := fn(querier{tx}); err != nil {
		return err
	}
	return sqlstore.DBError("commit read", tx.Commit(ctx))
}

// maxAttempts bounds the retries of a transaction that lost a serialization
// race.
const maxAttempts = 12

// Tx implements store.Store. The transaction is SERIALIZABLE; when PostgreSQL
// aborts it for a serialization failure, a deadlock or a concurrent insert of
// the same resource, fn runs again from the start in a new transaction (up to
// maxAttempts times, then ErrConflict). fn must therefore have no effects
// outside the transaction that it cannot repeat.
func (s *Store) Tx(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		retry, err := s.try(ctx, fn)
		if !retry {
			return err
		}
		if attempt >= maxAttempts {
			return fmt.Errorf("%w: gave up after %d serialization failures", store.ErrConflict, attempt)
		}
		// Back off with jitter so the competitors spread out.
		d := time.Duration(attempt*attempt) * time.Millisecond
		d += time.Duration(time.Now().UnixNano() % int64(d))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// try runs fn once; retry reports that it lost a race and may be rerun.
func (s *Store) try(ctx context.Context, fn func(store.Tx) error) (retry bool, err error) {
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return false, sqlstore.DBError("begin", err)
	}
	t := newTx(s, ptx)
	defer func() {
		if !t.done {
			_ = ptx.Rollback(context.Background())
		}
	}()
	err = fn(t)
	if err == nil && !t.lost {
		err = t.flush(ctx)
	}
	if err != nil || t.lost {
		t.done = true
		_ = ptx.Rollback(context.Background())
		return t.lost, err
	}
	t.done = true
	if err := ptx.Commit(ctx); err != nil {
		if retryable(err) {
			return true, err
		}
		return false, sqlstore.DBError("commit", err)
	}
	return false, nil
}

// retryable reports a PostgreSQL error that a rerun of the transaction can
// resolve: serialization failure, deadlock, or a unique violation from a
// concurrent create of the same resource.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505":
		return true
	}
	return false
}

// nextPK hands out a resource key, drawing keys from the sequence in blocks.
// Sequence values are never rolled back, so a key is unique even when its
// transaction fails.
func (s *Store) nextPK(ctx context.Context, tx pgx.Tx) (int64, error) {
	s.pkMu.Lock()
	defer s.pkMu.Unlock()
	if len(s.pkFree) == 0 {
		rows, err := tx.Query(ctx, "SELECT nextval('resources_pk_seq') FROM generate_series(1, 256)")
		if err != nil {
			return 0, err
		}
		keys, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return 0, err
		}
		s.pkFree = keys
	}
	pk := s.pkFree[0]
	s.pkFree = s.pkFree[1:]
	return pk, nil
}
