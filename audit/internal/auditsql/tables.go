package auditsql

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"phix/audit"
)

// Rows is the part of a result set the shared queries use; pgx.Rows has it
// as is and database/sql rows through a small adapter.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// DB is the dialect hook a backend supplies: reads may go to a reader pool
// and writes to the writer.
type DB interface {
	Query(ctx context.Context, q string, args ...any) (Rows, error)
	Exec(ctx context.Context, q string, args ...any) (rowsAffected int64, err error)
}

// Tables implements the parts of audit.Backend that are the same SQL in every
// dialect: reads, checkpoints, keys, cursors and retention. Backends embed it
// and add Append, Size and ReadHashes, which differ in how they lock and batch.
type Tables struct {
	Dialect Dialect
	Conn    DB
	Name    string // package name that prefixes error messages
}

// rebind rewrites ? placeholders in q for the dialect.
func (d Dialect) rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var sb strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			sb.WriteString(d.Holder(n))
			continue
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

func (t *Tables) query(ctx context.Context, q string, args ...any) (Rows, error) {
	return t.Conn.Query(ctx, t.Dialect.rebind(q), args...)
}

func (t *Tables) exec(ctx context.Context, q string, args ...any) (int64, error) {
	return t.Conn.Exec(ctx, t.Dialect.rebind(q), args...)
}

// queryRow scans the first row of q into dest and reports whether there was one.
func (t *Tables) queryRow(ctx context.Context, q string, args []any, dest ...any) (bool, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return false, err
	}
	return true, rows.Err()
}

// HashRange implements audit.Backend.
func (t *Tables) HashRange(ctx context.Context, from, to int64) ([]tlog.Hash, error) {
	rows, err := t.query(ctx, "SELECT id, hash FROM audit_hashes WHERE id >= ? AND id < ? ORDER BY id", from, to)
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
			return nil, fmt.Errorf("%s: stored hash %d malformed", t.Name, id)
		}
		out = append(out, tlog.Hash(h))
	}
	return out, rows.Err()
}

func (t *Tables) events(ctx context.Context, q string, args ...any) ([]audit.Record, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var r Row
		if err := rows.Scan(r.Dest()...); err != nil {
			return nil, err
		}
		out = append(out, r.Record())
	}
	return out, rows.Err()
}

// Events implements audit.Backend.
func (t *Tables) Events(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	return t.events(ctx, "SELECT "+EventColumns+" FROM audit_events WHERE idx > ? ORDER BY idx LIMIT ?", after, limit)
}

// Event implements audit.Backend.
func (t *Tables) Event(ctx context.Context, index int64) (audit.Record, error) {
	rs, err := t.events(ctx, "SELECT "+EventColumns+" FROM audit_events WHERE idx = ?", index)
	if err != nil {
		return audit.Record{}, err
	}
	if len(rs) == 0 {
		return audit.Record{}, audit.ErrNotFound
	}
	return rs[0], nil
}

// Search implements audit.Backend.
func (t *Tables) Search(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	query, args := t.Dialect.Search(q)
	// Search already numbers its placeholders; rebinding it again is a no-op.
	return t.events(ctx, query, args...)
}

// Stats implements audit.Backend.
func (t *Tables) Stats(ctx context.Context) (audit.Stats, error) {
	var st audit.Stats
	_, err := t.queryRow(ctx, `SELECT (SELECT COUNT(*) FROM audit_events), (SELECT COUNT(*) FROM audit_hashes),
		(SELECT COALESCE(MAX(idx), -1) FROM audit_events)`, nil, &st.Events, &st.Hashes, &st.MaxIndex)
	return st, err
}

// AddCheckpoint implements audit.Backend.
func (t *Tables) AddCheckpoint(ctx context.Context, size int64, note []byte, at time.Time) error {
	_, err := t.exec(ctx, "INSERT INTO audit_checkpoints (size, note, at) VALUES (?,?,?) ON CONFLICT (size) DO NOTHING",
		size, note, at.UnixMicro())
	return err
}

func (t *Tables) checkpoints(ctx context.Context, q string) ([]audit.StoredCheckpoint, error) {
	rows, err := t.query(ctx, q)
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
func (t *Tables) LatestCheckpoint(ctx context.Context) (audit.StoredCheckpoint, error) {
	cs, err := t.checkpoints(ctx, "SELECT size, note, at FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
	if err != nil {
		return audit.StoredCheckpoint{}, err
	}
	if len(cs) == 0 {
		return audit.StoredCheckpoint{}, audit.ErrNotFound
	}
	return cs[0], nil
}

// Checkpoints implements audit.Backend.
func (t *Tables) Checkpoints(ctx context.Context) ([]audit.StoredCheckpoint, error) {
	return t.checkpoints(ctx, "SELECT size, note, at FROM audit_checkpoints ORDER BY size")
}

// PutKey implements audit.Backend.
func (t *Tables) PutKey(ctx context.Context, id, vkey string) error {
	_, err := t.exec(ctx, "INSERT INTO audit_keys (kid, vkey) VALUES (?,?) ON CONFLICT (kid) DO NOTHING", id, vkey)
	return err
}

// Keys implements audit.Backend.
func (t *Tables) Keys(ctx context.Context) ([]string, error) {
	rows, err := t.query(ctx, "SELECT vkey FROM audit_keys ORDER BY kid")
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
func (t *Tables) Cursor(ctx context.Context, sink string) (int64, error) {
	var idx int64
	found, err := t.queryRow(ctx, "SELECT idx FROM audit_cursors WHERE sink = ?", []any{sink}, &idx)
	if err != nil {
		return 0, err
	}
	if !found {
		return -1, nil
	}
	return idx, nil
}

// SetCursor implements audit.Backend.
func (t *Tables) SetCursor(ctx context.Context, sink string, index int64) error {
	_, err := t.exec(ctx, "INSERT INTO audit_cursors (sink, idx) VALUES (?,?) ON CONFLICT (sink) DO UPDATE SET idx = excluded.idx", sink, index)
	return err
}

// Prune implements audit.Backend.
func (t *Tables) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	return t.exec(ctx, `UPDATE audit_events SET body = NULL, action = NULL, outcome = NULL, alert = NULL,
		patient = NULL, agent = NULL, entity = NULL
		WHERE body IS NOT NULL AND idx < COALESCE((SELECT MIN(idx) FROM audit_events WHERE ts >= ?),
			(SELECT COALESCE(MAX(idx)+1, 0) FROM audit_events))`, cutoff.UnixMicro())
}
