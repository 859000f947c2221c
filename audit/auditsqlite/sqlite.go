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

	"golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite" // driver

	"phix/audit"
	"phix/audit/internal/auditsql"
)

// Store is an audit.Backend over one SQLite file.
type Store struct {
	auditsql.Tables
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
	db := sqliteDB{w: w, r: r}
	return &Store{w: w, r: r, Tables: auditsql.Tables{Dialect: auditsql.SQLite, Conn: db, Name: "auditsqlite"}}, nil
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

// sqliteDB sends the shared reads to the reader pool and writes to the writer.
type sqliteDB struct{ w, r *sql.DB }

// sqlRows adapts *sql.Rows to auditsql.Rows.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

func (d sqliteDB) Query(ctx context.Context, q string, args ...any) (auditsql.Rows, error) {
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (d sqliteDB) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := d.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
