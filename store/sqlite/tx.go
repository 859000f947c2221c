package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"phix/fhir/search"
	"phix/store"
	"phix/store/internal/sqlstore"
)

// tx is a write transaction on the writer connection.
type tx struct {
	s  *Store
	tx *sql.Tx
	// broken is the first driver error a Put met after it had begun writing:
	// the transaction may hold part of that Put, so it must not commit even
	// if fn ignores the error.
	broken error
}

func (t *tx) q() querier { return querier{c: &t.s.wstmts, tx: t.tx} }

// Read implements store.Reader; it sees the transaction's own writes.
func (t *tx) Read(ctx context.Context, typ, id string) (*store.Record, error) {
	return sqlstore.Read(ctx, t.q(), dialect, typ, id)
}

// VRead implements store.Reader.
func (t *tx) VRead(ctx context.Context, typ, id string, version int64) (*store.Record, error) {
	return sqlstore.VRead(ctx, t.q(), dialect, typ, id, version)
}

// History implements store.Reader.
func (t *tx) History(ctx context.Context, o store.HistoryOptions) ([]*store.Record, int, error) {
	return sqlstore.History(ctx, t.q(), dialect, o)
}

// Search implements store.Reader.
func (t *tx) Search(ctx context.Context, q *search.Query) (*store.SearchResult, error) {
	return sqlstore.Search(ctx, t.q(), dialect, q)
}

const (
	sqlLookup     = `SELECT pk, version, idx_mask FROM resources WHERE type = ?1 AND id = ?2`
	sqlInsertRes  = `INSERT INTO resources (type, id, version, last_updated, deleted, idx_mask) VALUES (?1, ?2, ?3, ?4, ?5, ?6)`
	sqlUpdateRes  = `UPDATE resources SET version = ?1, last_updated = ?2, deleted = ?3, idx_mask = ?4 WHERE pk = ?5`
	sqlInsertVers = `INSERT INTO resource_versions (res_pk, version, type, id, last_updated, deleted, method, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`
)

// insertBatch is the most index rows one INSERT statement carries.
const insertBatch = 32

// fixedStatements are prepared at Open.
func fixedStatements() []string {
	out := []string{sqlLookup, sqlInsertRes, sqlUpdateRes, sqlInsertVers}
	for t := range sqlstore.Tables {
		out = append(out, deleteSQL(t))
		for n := 1; n <= insertBatch; n++ {
			out = append(out, insertSQL(t, n))
		}
	}
	return out
}

func deleteSQL(t int) string {
	return "DELETE FROM " + sqlstore.Tables[t].Name + " WHERE res_pk = ?1"
}

// insertSQL is a multi-row INSERT of n rows into index table t.
func insertSQL(t int, n int) string {
	tb := sqlstore.Tables[t]
	cols := 3 + len(tb.Cols)
	var b strings.Builder
	b.WriteString("INSERT INTO " + tb.Name + " (res_pk, rtype, param, " + strings.Join(tb.Cols, ", ") + ") VALUES ")
	// Plain "?" binds by position without a parameter-name lookup.
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Put implements store.Tx.
func (t *tx) Put(ctx context.Context, w *store.Write) (*store.Record, error) {
	if t.broken != nil {
		return nil, t.broken
	}
	return t.put(ctx, w)
}

func (t *tx) put(ctx context.Context, w *store.Write) (*store.Record, error) {
	if err := sqlstore.ValidateWrite(w); err != nil {
		return nil, err
	}
	var rows []sqlstore.Row
	var mask uint8
	if !w.Deleted {
		var err error
		if rows, mask, err = sqlstore.EncodeEntries(w.Index); err != nil {
			return nil, err
		}
	}
	q := t.q()
	var pk, cur, oldMask int64
	st, err := q.stmt(ctx, sqlLookup)
	if err != nil {
		return nil, sqlstore.DBError("put: lookup", err)
	}
	switch err := st.QueryRowContext(ctx, w.Type, w.ID).Scan(&pk, &cur, &oldMask); {
	case errors.Is(err, sql.ErrNoRows):
		cur = 0
	case err != nil:
		return nil, sqlstore.DBError("put: lookup", err)
	}
	if err := sqlstore.CheckVersion(w, cur); err != nil {
		return nil, err
	}
	rec, err := t.write(ctx, q, w, pk, cur, oldMask, mask, rows)
	if err != nil {
		t.broken = err
		return nil, err
	}
	return rec, nil
}

// write performs the statements of one Put whose preconditions held.
func (t *tx) write(ctx context.Context, q querier, w *store.Write, pk, cur, oldMask int64, mask uint8, rows []sqlstore.Row) (*store.Record, error) {
	lu := w.LastUpdated.UnixNano()
	if cur == 0 {
		res, err := q.exec(ctx, sqlInsertRes, w.Type, w.ID, w.Version, lu, w.Deleted, int64(mask))
		if err != nil {
			return nil, mapWriteErr("put: insert resource", err)
		}
		if pk, err = res.LastInsertId(); err != nil {
			return nil, sqlstore.DBError("put: insert resource", err)
		}
	} else {
		if _, err := q.exec(ctx, sqlUpdateRes, w.Version, lu, w.Deleted, int64(mask), pk); err != nil {
			return nil, sqlstore.DBError("put: update resource", err)
		}
		for i, tb := range sqlstore.Tables {
			if oldMask&int64(tb.Bit) != 0 {
				if _, err := q.exec(ctx, deleteSQL(i), pk); err != nil {
					return nil, sqlstore.DBError("put: clear index", err)
				}
			}
		}
	}
	body := w.Body
	if w.Deleted || body == nil {
		body = []byte{}
	}
	if _, err := q.exec(ctx, sqlInsertVers, pk, w.Version, w.Type, w.ID, lu, w.Deleted, w.Method, body); err != nil {
		return nil, mapWriteErr("put: insert version", err)
	}
	if err := t.insertIndex(ctx, q, pk, w.Type, rows); err != nil {
		return nil, err
	}
	if err := t.writeFullText(ctx, q, pk, cur != 0, w); err != nil {
		return nil, err
	}
	rec := &store.Record{
		Type: w.Type, ID: w.ID, Version: w.Version, LastUpdated: w.LastUpdated.UTC(),
		Deleted: w.Deleted, Method: w.Method,
	}
	if !w.Deleted {
		rec.Body = w.Body
	}
	return rec, nil
}

// insertIndex writes the rows table by table, up to insertBatch per statement.
func (t *tx) insertIndex(ctx context.Context, q querier, pk int64, rtype string, rows []sqlstore.Row) error {
	var byTable [7][]*sqlstore.Row
	for i := range rows {
		byTable[rows[i].Table] = append(byTable[rows[i].Table], &rows[i])
	}
	var args []any
	for tb, rs := range byTable {
		for len(rs) > 0 {
			n := min(len(rs), insertBatch)
			args = args[:0]
			for _, r := range rs[:n] {
				args = append(args, pk, rtype, r.Param)
				args = append(args, r.Vals...)
			}
			if _, err := q.exec(ctx, insertSQL(tb, n), args...); err != nil {
				return sqlstore.DBError("put: insert index", err)
			}
			rs = rs[n:]
		}
	}
	return nil
}

// mapWriteErr turns a uniqueness violation (a concurrent writer in another
// process got there first) into ErrConflict.
func mapWriteErr(op string, err error) error {
	var e interface{ Code() int }
	if errors.As(err, &e) && (e.Code()&0xff) == 19 { // SQLITE_CONSTRAINT
		return fmt.Errorf("%w: %s", store.ErrConflict, op)
	}
	return sqlstore.DBError(op, err)
}
