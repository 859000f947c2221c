package session

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"sync"
	"time"

	"phix/errcode"
)

// FailureLog counts failed attempts per principal where every replica of
// a node sees them (Lockout.Failures).
type FailureLog interface {
	// RecordFailure records a failure of principal at at and returns how
	// many it has had within window before at, this one included.
	RecordFailure(ctx context.Context, principal string, at time.Time, window time.Duration) (int, error)
	// ClearFailures forgets principal's failures.
	ClearFailures(ctx context.Context, principal string) error
}

// Activity is the shared state of one session (Idle.Shared).
type Activity struct {
	Last      time.Time // last activity
	LoggedOff time.Time // zero unless logged off
}

// ActivityStore keeps session activity where every replica sees it.
type ActivityStore interface {
	LoadActivity(ctx context.Context, key string) (Activity, bool, error)
	SaveActivity(ctx context.Context, key string, a Activity) error
}

// SQLState keeps lockouts, failure counts and session activity in the
// node's authorization store (SQLite or PostgreSQL through database/sql),
// so that replicas behind one address share them: a principal locked out
// on one is locked out on all, failures add up across them, and a session
// active on one is not logged off by another. It implements
// errcode.LockoutStore, FailureLog and ActivityStore. Keys are stored as
// SHA-256 hashes (they hold issuers and subjects). Lock checks are cached
// for LockCacheTTL, so a lock reaches the other replicas within it.
type SQLState struct {
	db *sql.DB
	// LockCacheTTL bounds how long a lock check is served from memory
	// (default 1 s; a Lock from this process updates the cache at once).
	LockCacheTTL time.Duration

	mu    sync.Mutex
	cache map[string]lockCache
}

type lockCache struct {
	until   time.Time // zero with locked: indefinite
	code    errcode.Code
	locked  bool
	checked time.Time
}

// maxLockCache bounds the cached lock checks.
const maxLockCache = 100000

// NewSQLState returns the shared state over db; MigrateShared must have run.
func NewSQLState(db *sql.DB) *SQLState { return &SQLState{db: db, cache: map[string]lockCache{}} }

// MigrateShared creates the tables (idempotent; the SQL is valid for SQLite
// and PostgreSQL).
func MigrateShared(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS session_lockouts (principal TEXT PRIMARY KEY, until_ms BIGINT NOT NULL, code TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS session_failures (principal TEXT NOT NULL, at_ms BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS session_failures_principal ON session_failures (principal, at_ms)`,
		`CREATE TABLE IF NOT EXISTS session_activity (key TEXT PRIMARY KEY, last_ms BIGINT NOT NULL, logged_off_ms BIGINT NOT NULL)`,
		// IP allowlists (StoredAllowlist): client and organisation ids are
		// not secret and are listed, so they are stored as they are.
		`CREATE TABLE IF NOT EXISTS session_allowlist (kind TEXT NOT NULL, id TEXT NOT NULL, cidr TEXT NOT NULL, PRIMARY KEY (kind, id, cidr))`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

func hashKey(k string) string {
	h := sha256.Sum256([]byte(k))
	return hex.EncodeToString(h[:])
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Lock implements errcode.LockoutStore: a longer lock is never shortened.
func (s *SQLState) Lock(ctx context.Context, principal string, until time.Time, c errcode.Code) error {
	k := hashKey(principal)
	// until_ms 0 is an indefinite lock: it wins, and is never replaced by
	// a timed one.
	_, err := s.db.ExecContext(ctx, `INSERT INTO session_lockouts (principal, until_ms, code) VALUES ($1, $2, $3)
		ON CONFLICT (principal) DO UPDATE SET until_ms = excluded.until_ms, code = excluded.code
		WHERE session_lockouts.until_ms <> 0 AND (excluded.until_ms = 0 OR excluded.until_ms > session_lockouts.until_ms)`,
		k, ms(until), string(c))
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.cache, k)
	s.mu.Unlock()
	return nil
}

// Locked implements errcode.LockoutStore.
func (s *SQLState) Locked(ctx context.Context, principal string, now time.Time) (time.Time, errcode.Code, bool, error) {
	k := hashKey(principal)
	ttl := s.LockCacheTTL
	if ttl <= 0 {
		ttl = time.Second
	}
	s.mu.Lock()
	if c, ok := s.cache[k]; ok && now.Sub(c.checked) < ttl && now.Sub(c.checked) >= 0 {
		s.mu.Unlock()
		if c.locked && (c.until.IsZero() || now.Before(c.until)) {
			return c.until, c.code, true, nil
		}
		return time.Time{}, "", false, nil
	}
	s.mu.Unlock()
	var untilMS int64
	var code string
	err := s.db.QueryRowContext(ctx, `SELECT until_ms, code FROM session_lockouts WHERE principal = $1`, k).Scan(&untilMS, &code)
	c := lockCache{checked: now}
	switch {
	case err == sql.ErrNoRows:
	case err != nil:
		return time.Time{}, "", false, err
	default:
		until := fromMS(untilMS)
		if until.IsZero() || now.Before(until) {
			c.until, c.code, c.locked = until, errcode.Code(code), true
		}
	}
	s.mu.Lock()
	if len(s.cache) >= maxLockCache {
		clear(s.cache) // bounded: checks go to the database until it refills
	}
	s.cache[k] = c
	s.mu.Unlock()
	return c.until, c.code, c.locked, nil
}

// Clear implements errcode.LockoutStore.
func (s *SQLState) Clear(ctx context.Context, principal string) error {
	k := hashKey(principal)
	if _, err := s.db.ExecContext(ctx, `DELETE FROM session_lockouts WHERE principal = $1`, k); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.cache, k)
	s.mu.Unlock()
	return nil
}

// RecordFailure implements FailureLog.
func (s *SQLState) RecordFailure(ctx context.Context, principal string, at time.Time, window time.Duration) (int, error) {
	k := hashKey(principal)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DELETE FROM session_failures WHERE principal = $1 AND at_ms <= $2`, k, ms(at.Add(-window))); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO session_failures (principal, at_ms) VALUES ($1, $2)`, k, ms(at)); err != nil {
		return 0, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM session_failures WHERE principal = $1`, k).Scan(&n); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// ClearFailures implements FailureLog.
func (s *SQLState) ClearFailures(ctx context.Context, principal string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM session_failures WHERE principal = $1`, hashKey(principal))
	return err
}

// LoadActivity implements ActivityStore.
func (s *SQLState) LoadActivity(ctx context.Context, key string) (Activity, bool, error) {
	var last, off int64
	err := s.db.QueryRowContext(ctx, `SELECT last_ms, logged_off_ms FROM session_activity WHERE key = $1`, hashKey(key)).Scan(&last, &off)
	if err == sql.ErrNoRows {
		return Activity{}, false, nil
	}
	if err != nil {
		return Activity{}, false, err
	}
	return Activity{Last: fromMS(last), LoggedOff: fromMS(off)}, true, nil
}

// SaveActivity implements ActivityStore. The stored last activity never
// goes back (two replicas saving out of order).
func (s *SQLState) SaveActivity(ctx context.Context, key string, a Activity) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO session_activity (key, last_ms, logged_off_ms) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET last_ms = CASE WHEN excluded.last_ms > session_activity.last_ms THEN excluded.last_ms ELSE session_activity.last_ms END,
			logged_off_ms = excluded.logged_off_ms`,
		hashKey(key), ms(a.Last), ms(a.LoggedOff))
	return err
}
