// Package sqlite is the embedded resource store: one SQLite database file
// (modernc.org/sqlite, pure Go) in WAL mode. All writes go through a single
// connection that begins every transaction with BEGIN IMMEDIATE, so writers
// are serialized (also across processes sharing the file) and a search made
// inside a transaction cannot race a concurrent insert. Reads use a pool of
// read-only connections and run concurrently with the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"phix/fhir/search"
	"phix/store"
	"phix/store/internal/sqlstore"
)

var dialect = sqlstore.SQLite{}

// Store is a store.Store on one SQLite file.
type Store struct {
	w      *sql.DB // exactly one connection: the writer
	r      *sql.DB // read-only connections
	wstmts stmtCache
	rstmts stmtCache
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and brings its schema
// up to date. path ":memory:" gives a private in-memory database on a single
// connection, for tests.
func Open(path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("%w: sqlite path is empty or contains '?' or '#'", store.ErrInvalid)
	}
	const common = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=cache_size(-32768)"
	s := &Store{}
	var err error
	if path == ":memory:" {
		s.w, err = sql.Open("sqlite", "file::memory:?_txlock=immediate&"+common)
		if err != nil {
			return nil, sqlstore.DBError("open", err)
		}
		s.w.SetMaxOpenConns(1)
		s.w.SetMaxIdleConns(1)
		s.w.SetConnMaxLifetime(0)
		s.w.SetConnMaxIdleTime(0)
		s.r = s.w
	} else {
		// The pragmas run in this order on each new connection: the busy
		// timeout must come before journal_mode(WAL), which takes a lock,
		// or a concurrent opener fails at once with SQLITE_BUSY.
		s.w, err = sql.Open("sqlite", path+"?_txlock=immediate&"+common+"&_pragma=journal_mode(WAL)")
		if err != nil {
			return nil, sqlstore.DBError("open", err)
		}
		s.w.SetMaxOpenConns(1)
		s.w.SetMaxIdleConns(1)
		s.w.SetConnMaxIdleTime(0)
		s.w.SetConnMaxLifetime(0)
	}
	s.wstmts.db = s.w
	ctx := context.Background()
	if err := migrate(ctx, s.w); err != nil {
		s.w.Close()
		return nil, err
	}
	if s.r == nil {
		s.r, err = sql.Open("sqlite", path+"?_pragma=query_only(1)&"+common)
		if err != nil {
			s.w.Close()
			return nil, sqlstore.DBError("open", err)
		}
		n := 2 * runtime.GOMAXPROCS(0)
		if n < 4 {
			n = 4
		}
		s.r.SetMaxOpenConns(n)
		s.r.SetMaxIdleConns(n)
		s.r.SetConnMaxIdleTime(0)
		s.r.SetConnMaxLifetime(0)
	}
	s.rstmts.db = s.r
	for _, q := range fixedStatements() {
		if _, err := s.wstmts.get(ctx, q, true); err != nil {
			s.Close()
			return nil, sqlstore.DBError("prepare", err)
		}
	}
	for _, q := range sqlstore.FixedReads(dialect) {
		if _, err := s.wstmts.get(ctx, q, true); err != nil {
			s.Close()
			return nil, sqlstore.DBError("prepare", err)
		}
		if _, err := s.rstmts.get(ctx, q, true); err != nil {
			s.Close()
			return nil, sqlstore.DBError("prepare", err)
		}
	}
	return s, nil
}

// migrate applies the pending migrations in one immediate transaction, so
// processes opening the same file concurrently apply each exactly once.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	// Several processes opening a new file at once: one of them may get
	// SQLITE_BUSY at once, without the busy timeout's wait, while another
	// connection sets the file up (seen in CI under load); try again for
	// a while before giving up.
	for try := 1; err != nil && isBusy(err) && try <= 40; try++ {
		select {
		case <-ctx.Done():
			return sqlstore.DBError("migrate: begin", ctx.Err())
		case <-time.After(time.Duration(try) * 10 * time.Millisecond):
		}
		tx, err = db.BeginTx(ctx, nil)
	}
	if err != nil {
		return sqlstore.DBError("migrate: begin", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)`); err != nil {
		return sqlstore.DBError("migrate: create table", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return sqlstore.DBError("migrate: read version", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("store: sqlite schema version %d is newer than this binary (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return sqlstore.DBError(fmt.Sprintf("migrate: apply %d", v), err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, v); err != nil {
			return sqlstore.DBError("migrate: record", err)
		}
	}
	return sqlstore.DBError("migrate: commit", tx.Commit())
}

// Close closes the database.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.rstmts.close()
	s.wstmts.close()
	var err error
	if s.r != s.w {
		err = s.r.Close()
	}
	return errors.Join(err, s.w.Close())
}

// reader returns the querier for reads outside a transaction.
func (s *Store) reader() sqlstore.Querier { return querier{c: &s.rstmts} }

// Read implements store.Reader.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Record, error) {
	return sqlstore.Read(ctx, s.reader(), dialect, typ, id)
}

// VRead implements store.Reader.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Record, error) {
	return sqlstore.VRead(ctx, s.reader(), dialect, typ, id, version)
}

// History implements store.Reader. Its count and page come from one read
// transaction, so they agree.
func (s *Store) History(ctx context.Context, o store.HistoryOptions) (recs []*store.Record, total int, err error) {
	err = s.readTx(ctx, func(q sqlstore.Querier) error {
		recs, total, err = sqlstore.History(ctx, q, dialect, o)
		return err
	})
	return recs, total, err
}

// Search implements store.Reader. The count, the page and the includes come
// from one read transaction (one WAL snapshot).
func (s *Store) Search(ctx context.Context, q *search.Query) (res *store.SearchResult, err error) {
	err = s.readTx(ctx, func(qr sqlstore.Querier) error {
		res, err = sqlstore.Search(ctx, qr, dialect, q)
		return err
	})
	return res, err
}

func (s *Store) readTx(ctx context.Context, fn func(sqlstore.Querier) error) error {
	if s.r == s.w {
		return fn(querier{c: &s.wstmts})
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return sqlstore.DBError("begin read", err)
	}
	defer tx.Rollback()
	return fn(querier{c: &s.rstmts, tx: tx})
}

// Tx implements store.Store. Transactions run one at a time.
func (s *Store) Tx(ctx context.Context, fn func(store.Tx) error) (err error) {
	if s.closed.Load() {
		return errors.New("store: sqlite store is closed")
	}
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return sqlstore.DBError("begin", err)
	}
	t := &tx{s: s, tx: sqlTx}
	done := false
	defer func() {
		if !done {
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(t); err != nil {
		done = true
		if rerr := sqlTx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return errors.Join(err, sqlstore.DBError("rollback", rerr))
		}
		return err
	}
	done = true
	if t.broken != nil {
		_ = sqlTx.Rollback()
		return t.broken
	}
	return sqlstore.DBError("commit", sqlTx.Commit())
}

// stmtCache keeps prepared statements per SQL text; statements with
// variable shape (search) beyond its bound run unprepared.
type stmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

const maxCachedStmts = 512

// get returns the cached statement for q. When it is not cached and prepare
// is set, it prepares it on the pool; callers holding a connection (in a
// transaction) must not, since the pool may have no other connection to give.
func (c *stmtCache) get(ctx context.Context, q string, prepare bool) (*sql.Stmt, error) {
	c.mu.RLock()
	st := c.m[q]
	c.mu.RUnlock()
	if st != nil || !prepare {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[q]; st != nil {
		return st, nil
	}
	if len(c.m) >= maxCachedStmts {
		return nil, nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// querier adapts database/sql (with the statement cache) to sqlstore.Querier.
type querier struct {
	c  *stmtCache
	tx *sql.Tx
}

func (q querier) stmt(ctx context.Context, text string) (*sql.Stmt, error) {
	st, err := q.c.get(ctx, text, q.tx == nil)
	if err != nil || st == nil {
		return nil, err
	}
	if q.tx != nil {
		return q.tx.StmtContext(ctx, st), nil
	}
	return st, nil
}

func (q querier) Query(ctx context.Context, text string, args ...any) (sqlstore.Rows, error) {
	st, err := q.stmt(ctx, text)
	if err != nil {
		return nil, err
	}
	var rows *sql.Rows
	switch {
	case st != nil:
		rows, err = st.QueryContext(ctx, args...)
	case q.tx != nil:
		rows, err = q.tx.QueryContext(ctx, text, args...)
	default:
		rows, err = q.c.db.QueryContext(ctx, text, args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q querier) exec(ctx context.Context, text string, args ...any) (sql.Result, error) {
	st, err := q.stmt(ctx, text)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, text, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// isBusy reports whether err is SQLite's SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var e interface{ Code() int }
	return errors.As(err, &e) && e.Code()&0xff == 5
}
