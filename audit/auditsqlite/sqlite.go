// Package auditsqlite stores the audit log in SQLite (modernc.org/sqlite, pure
// Go): the embedded default. Writes go through one connection in WAL mode with
// synchronous=FULL, so a committed batch survives a crash or power loss;
// BEGIN IMMEDIATE makes every append exclusive across processes.
package auditsqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite" // driver

	"phix/audit"
	"phix/audit/internal/auditsql"
)

// Store is an audit.Backend over one SQLite file.
type Store struct {
	w *sql.DB // one writer connection
	r *sql.DB // readers
}

var _ audit.Backend = (*Store)(nil)

// Open opens (creating if needed) the audit tables in the SQLite file at path.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("auditsqlite: bad path")
	}
	const common = "_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	w, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&"+common)
	if err != nil {
		return nil, fmt.Errorf("auditsqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	for _, stmt := range auditsql.SQLite.Schema() {
		if _, err := w.ExecContext(ctx, stmt); err != nil {
			w.Close()
			return nil, fmt.Errorf("auditsqlite: schema: %w", err)
		}
	}
	r, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)&"+common)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("auditsqlite: open: %w", err)
	}
	r.SetMaxOpenConns(4)
	return &Store{w: w, r: r}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// DB returns the writer handle (tests use it to tamper with the tables).
func (s *Store) DB() *sql.DB { return s.w }

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func size(ctx context.Context, q querier) (int64, error) {
	rows, err := q.QueryContext(ctx, "SELECT COALESCE(MAX(idx)+1, 0) FROM audit_events")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}

func readHashes(ctx context.Context, q querier, idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	pos := make(map[int64][]int, len(idx))
	for start := 0; start < len(idx); start += 500 {
		chunk := idx[start:min(start+500, len(idx))]
		args := make([]any, len(chunk))
		for i, x := range chunk {
			args[i] = x
			pos[x] = append(pos[x], start+i)
		}
		rows, err := q.QueryContext(ctx, "SELECT id, hash FROM audit_hashes WHERE id IN ("+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+")", args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			var h []byte
			if err := rows.Scan(&id, &h); err != nil {
				rows.Close()
				return nil, err
			}
			if len(h) != tlog.HashSize {
				rows.Close()
				return nil, fmt.Errorf("auditsqlite: stored hash %d has wrong length", id)
			}
			for _, p := range pos[id] {
				copy(out[p][:], h)
			}
			delete(pos, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for id := range pos {
		return nil, fmt.Errorf("auditsqlite: stored hash %d missing", id)
	}
	return out, nil
}

// Append implements audit.Backend.
func (s *Store) Append(ctx context.Context, build func(int64, tlog.HashReader) (*audit.Batch, error)) error {
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (see _txlock)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	n, err := size(ctx, tx)
	if err != nil {
		return err
	}
	b, err := build(n, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return readHashes(ctx, tx, idx)
	}))
	if err != nil {
		return err
	}
	if err := insertEvents(ctx, tx, b.Records); err != nil {
		return err
	}
	if err := insertHashes(ctx, tx, tlog.StoredHashCount(n), b.Hashes); err != nil {
		return err
	}
	return tx.Commit()
}

const rowsPerInsert = 100

func insertEvents(ctx context.Context, tx *sql.Tx, recs []audit.Record) error {
	for start := 0; start < len(recs); start += rowsPerInsert {
		chunk := recs[start:min(start+rowsPerInsert, len(recs))]
		var sb strings.Builder
		sb.WriteString("INSERT INTO audit_events (" + auditsql.EventColumns + ") VALUES ")
		args := make([]any, 0, 9*len(chunk))
		for i, r := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?,?)")
			args = append(args, r.Index, r.Time.UnixMicro(), r.Body,
				auditsql.Nullable(r.Action), auditsql.Nullable(r.Outcome), auditsql.Nullable(r.Alert),
				auditsql.Nullable(r.Patient), auditsql.Nullable(r.Agent), auditsql.Nullable(r.Entity))
		}
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

func insertHashes(ctx context.Context, tx *sql.Tx, base int64, hs []tlog.Hash) error {
	for start := 0; start < len(hs); start += 4 * rowsPerInsert {
		chunk := hs[start:min(start+4*rowsPerInsert, len(hs))]
		args := make([]any, 0, 2*len(chunk))
		for i := range chunk {
			args = append(args, base+int64(start+i), chunk[i][:])
		}
		q := "INSERT INTO audit_hashes (id, hash) VALUES " + strings.TrimSuffix(strings.Repeat("(?,?),", len(chunk)), ",")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// Size implements audit.Backend.
func (s *Store) Size(ctx context.Context) (int64, error) { return size(ctx, s.r) }

// ReadHashes implements audit.Backend.
func (s *Store) ReadHashes(ctx context.Context, idx []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, s.r, idx)
}

// HashRange implements audit.Backend.
func (s *Store) HashRange(ctx context.Context, from, to int64) ([]tlog.Hash, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, hash FROM audit_hashes WHERE id >= ? AND id < ? ORDER BY id", from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]tlog.Hash, 0, max(0, to-from))
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return nil, err
		}
		if id != from+int64(len(out)) {
			break // a gap: the caller sees the short result
		}
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("auditsqlite: stored hash %d malformed", id)
		}
		out = append(out, tlog.Hash(h))
	}
	return out, rows.Err()
}

func (s *Store) events(ctx context.Context, q string, args ...any) ([]audit.Record, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var r auditsql.Row
		if err := rows.Scan(r.Dest()...); err != nil {
			return nil, err
		}
		out = append(out, r.Record())
	}
	return out, rows.Err()
}

// Events implements audit.Backend.
func (s *Store) Events(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	return s.events(ctx, "SELECT "+auditsql.EventColumns+" FROM audit_events WHERE idx > ? ORDER BY idx LIMIT ?", after, limit)
}

// Event implements audit.Backend.
func (s *Store) Event(ctx context.Context, index int64) (audit.Record, error) {
	rs, err := s.events(ctx, "SELECT "+auditsql.EventColumns+" FROM audit_events WHERE idx = ?", index)
	if err != nil {
		return audit.Record{}, err
	}
	if len(rs) == 0 {
		return audit.Record{}, audit.ErrNotFound
	}
	return rs[0], nil
}

// Search implements audit.Backend.
func (s *Store) Search(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	query, args := auditsql.SQLite.Search(q)
	return s.events(ctx, query, args...)
}

// Stats implements audit.Backend.
func (s *Store) Stats(ctx context.Context) (audit.Stats, error) {
	var st audit.Stats
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM audit_events), (SELECT COUNT(*) FROM audit_hashes),
		(SELECT COALESCE(MAX(idx), -1) FROM audit_events)`).Scan(&st.Events, &st.Hashes, &st.MaxIndex)
	return st, err
}

// AddCheckpoint implements audit.Backend.
func (s *Store) AddCheckpoint(ctx context.Context, size int64, note []byte, at time.Time) error {
	_, err := s.w.ExecContext(ctx, "INSERT INTO audit_checkpoints (size, note, at) VALUES (?,?,?) ON CONFLICT (size) DO NOTHING",
		size, note, at.UnixMicro())
	return err
}

func (s *Store) checkpoints(ctx context.Context, q string) ([]audit.StoredCheckpoint, error) {
	rows, err := s.r.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.StoredCheckpoint
	for rows.Next() {
		var c audit.StoredCheckpoint
		var at int64
		if err := rows.Scan(&c.Size, &c.Note, &at); err != nil {
			return nil, err
		}
		c.At = time.UnixMicro(at).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// LatestCheckpoint implements audit.Backend.
func (s *Store) LatestCheckpoint(ctx context.Context) (audit.StoredCheckpoint, error) {
	cs, err := s.checkpoints(ctx, "SELECT size, note, at FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
	if err != nil {
		return audit.StoredCheckpoint{}, err
	}
	if len(cs) == 0 {
		return audit.StoredCheckpoint{}, audit.ErrNotFound
	}
	return cs[0], nil
}

// Checkpoints implements audit.Backend.
func (s *Store) Checkpoints(ctx context.Context) ([]audit.StoredCheckpoint, error) {
	return s.checkpoints(ctx, "SELECT size, note, at FROM audit_checkpoints ORDER BY size")
}

// PutKey implements audit.Backend.
func (s *Store) PutKey(ctx context.Context, id, vkey string) error {
	_, err := s.w.ExecContext(ctx, "INSERT INTO audit_keys (kid, vkey) VALUES (?,?) ON CONFLICT (kid) DO NOTHING", id, vkey)
	return err
}

// Keys implements audit.Backend.
func (s *Store) Keys(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT vkey FROM audit_keys ORDER BY kid")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Cursor implements audit.Backend.
func (s *Store) Cursor(ctx context.Context, sink string) (int64, error) {
	var idx int64
	err := s.r.QueryRowContext(ctx, "SELECT idx FROM audit_cursors WHERE sink = ?", sink).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return -1, nil
	}
	return idx, err
}

// SetCursor implements audit.Backend.
func (s *Store) SetCursor(ctx context.Context, sink string, index int64) error {
	_, err := s.w.ExecContext(ctx, "INSERT INTO audit_cursors (sink, idx) VALUES (?,?) ON CONFLICT (sink) DO UPDATE SET idx = excluded.idx", sink, index)
	return err
}

// Prune implements audit.Backend.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE audit_events SET body = NULL, action = NULL, outcome = NULL, alert = NULL,
		patient = NULL, agent = NULL, entity = NULL
		WHERE body IS NOT NULL AND idx < COALESCE((SELECT MIN(idx) FROM audit_events WHERE ts >= ?),
			(SELECT COALESCE(MAX(idx)+1, 0) FROM audit_events))`, cutoff.UnixMicro())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
