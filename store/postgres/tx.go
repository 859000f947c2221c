package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"phix/fhir/search"
	"phix/store"
	"phix/store/internal/sqlstore"
)

// flushRows is the buffered row count that triggers a flush before commit.
const flushRows = 50000

type resKey struct{ typ, id string }

// resState is what the transaction knows of one resource it touched, and
// what it has buffered for it.
type resState struct {
	typ, id string
	pk      int64
	version int64 // current version as this transaction sees it (0: none)
	inDB    bool  // the resources row exists in the database (not only buffered)
	dbMask  uint8 // idx tables holding rows for it in the database

	// deferred: the resource was not looked up; Put assumed its current
	// version is expect and the flush verifies that.
	deferred bool
	expect   int64

	dirty   bool           // has buffered writes
	row     *resRow        // the resources row to insert or update
	idx     []sqlstore.Row // index rows replacing the database's
	delMask uint8          // database index tables to clear for it
	ft      *ftRow         // full-text row replacing the database's (nil: none)
}

type resRow struct {
	version, lu int64
	deleted     bool
	mask        uint8
}

type verRow struct {
	st          *resState
	version, lu int64
	method      string
	deleted     bool
	body        []byte
}

// tx is a write transaction with a write buffer.
type tx struct {
	s    *Store
	tx   pgx.Tx
	done bool
	lost bool // the transaction lost a serialization race and must be rerun

	known      map[resKey]*resState
	order      []*resState // dirty resources, in first-write order
	versions   []verRow
	unresolved []*resState
	pending    int
}

func newTx(s *Store, ptx pgx.Tx) *tx {
	return &tx{s: s, tx: ptx, known: map[resKey]*resState{}}
}

// fail records a driver error; a retryable one marks the transaction lost.
func (t *tx) fail(op string, err error) error {
	if retryable(err) {
		t.lost = true
		return fmt.Errorf("%w: %w", store.ErrConflict, sqlstore.DBError(op, err))
	}
	return sqlstore.DBError(op, err)
}

var errLost = fmt.Errorf("%w: transaction lost a serialization race and will be retried", store.ErrConflict)

func (t *tx) reader(ctx context.Context) (sqlstore.Querier, error) {
	if t.lost {
		return nil, errLost
	}
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return querier{t.tx}, nil
}

// Read implements store.Reader; it sees the transaction's own writes.
func (t *tx) Read(ctx context.Context, typ, id string) (*store.Record, error) {
	q, err := t.reader(ctx)
	if err != nil {
		return nil, err
	}
	r, err := sqlstore.Read(ctx, q, dialect, typ, id)
	return r, t.check(err)
}

// VRead implements store.Reader.
func (t *tx) VRead(ctx context.Context, typ, id string, version int64) (*store.Record, error) {
	q, err := t.reader(ctx)
	if err != nil {
		return nil, err
	}
	r, err := sqlstore.VRead(ctx, q, dialect, typ, id, version)
	return r, t.check(err)
}

// History implements store.Reader.
func (t *tx) History(ctx context.Context, o store.HistoryOptions) ([]*store.Record, int, error) {
	q, err := t.reader(ctx)
	if err != nil {
		return nil, 0, err
	}
	r, n, err := sqlstore.History(ctx, q, dialect, o)
	return r, n, t.check(err)
}

// Search implements store.Reader.
func (t *tx) Search(ctx context.Context, qq *search.Query) (*store.SearchResult, error) {
	q, err := t.reader(ctx)
	if err != nil {
		return nil, err
	}
	r, err := sqlstore.Search(ctx, q, dialect, qq)
	return r, t.check(err)
}

// check marks the transaction lost when a read failed on a serialization race.
func (t *tx) check(err error) error {
	if err != nil && retryable(err) {
		t.lost = true
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return err
}

const sqlLookup = `SELECT pk, version, idx_mask FROM resources WHERE type = $1 AND id = $2 FOR UPDATE`

// Put implements store.Tx.
//
// A Write with IfVersion or MustNotExist is checked at once, locking the
// resource row (one round trip). A plain Write is not looked up: Put assumes
// the current version is Version-1 and the next flush (the transaction's next
// read, or its commit) verifies that for all such writes in one query, so a
// bulk import costs no round trip per resource. A failed check then surfaces
// as ErrConflict from that read or from Tx.
func (t *tx) Put(ctx context.Context, w *store.Write) (*store.Record, error) {
	if t.lost {
		return nil, errLost
	}
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
	conditional := w.IfVersion != 0 || w.MustNotExist
	key := resKey{w.Type, w.ID}
	st := t.known[key]
	if st != nil && st.deferred && conditional {
		if err := t.flush(ctx); err != nil {
			return nil, err
		}
	}
	if st == nil {
		st = &resState{typ: w.Type, id: w.ID}
		if conditional {
			var m int32
			err := t.tx.QueryRow(ctx, sqlLookup, w.Type, w.ID).Scan(&st.pk, &st.version, &m)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return nil, t.fail("put: lookup", err)
			default:
				st.inDB, st.dbMask = true, uint8(m)
			}
		} else {
			st.deferred, st.expect, st.version = true, w.Version-1, w.Version-1
			t.unresolved = append(t.unresolved, st)
		}
		t.known[key] = st
	}
	if err := sqlstore.CheckVersion(w, st.version); err != nil {
		return nil, err
	}
	if st.pk == 0 {
		pk, err := t.s.nextPK(ctx, t.tx)
		if err != nil {
			return nil, t.fail("put: allocate key", err)
		}
		st.pk = pk
	}
	lu := w.LastUpdated.UnixNano()
	body := w.Body
	if w.Deleted || body == nil {
		body = []byte{}
	}
	st.row = &resRow{version: w.Version, lu: lu, deleted: w.Deleted, mask: mask}
	t.versions = append(t.versions, verRow{st: st, version: w.Version, lu: lu, method: w.Method, deleted: w.Deleted, body: body})
	if st.dbMask != 0 {
		st.delMask |= st.dbMask
		st.dbMask = 0
	}
	if !st.dirty {
		st.dirty = true
		t.order = append(t.order, st)
	}
	t.pending += len(rows) - len(st.idx) + 2
	st.idx = rows
	st.ft = fullTextRow(w)
	st.version = w.Version

	if t.pending >= flushRows {
		if err := t.flush(ctx); err != nil {
			return nil, err
		}
	}
	rec := &store.Record{Type: w.Type, ID: w.ID, Version: w.Version, LastUpdated: w.LastUpdated.UTC(), Deleted: w.Deleted, Method: w.Method}
	if !w.Deleted {
		rec.Body = w.Body
	}
	return rec, nil
}

// resolve looks up, in one locking query, the resources Put did not look up,
// and checks the versions it assumed.
func (t *tx) resolve(ctx context.Context) error {
	n := len(t.unresolved)
	if n == 0 {
		return nil
	}
	types, ids := make([]string, n), make([]string, n)
	for i, st := range t.unresolved {
		types[i], ids[i] = st.typ, st.id
	}
	rows, err := t.tx.Query(ctx, `SELECT r.type, r.id, r.pk, r.version, r.idx_mask FROM resources r
JOIN unnest($1::text[], $2::text[]) AS k (type, id) ON r.type = k.type AND r.id = k.id ORDER BY r.pk FOR UPDATE OF r`, types, ids)
	if err != nil {
		return t.fail("resolve", err)
	}
	type dbRow struct {
		pk, version int64
		mask        int32
	}
	found := map[resKey]dbRow{}
	for rows.Next() {
		var k resKey
		var r dbRow
		if err := rows.Scan(&k.typ, &k.id, &r.pk, &r.version, &r.mask); err != nil {
			rows.Close()
			return t.fail("resolve", err)
		}
		found[k] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return t.fail("resolve", err)
	}
	for _, st := range t.unresolved {
		r, ok := found[resKey{st.typ, st.id}]
		cur := int64(0)
		if ok {
			cur = r.version
		}
		if cur != st.expect {
			return fmt.Errorf("%w: version is not current+1", store.ErrConflict)
		}
		if ok {
			// The key drawn for it at Put is dropped (a gap in the sequence).
			st.pk, st.inDB = r.pk, true
			st.delMask |= uint8(r.mask)
		}
		st.deferred = false
	}
	t.unresolved = t.unresolved[:0]
	return nil
}

// flush sends the buffered writes as one pipelined batch.
func (t *tx) flush(ctx context.Context) error {
	if t.lost {
		return errLost
	}
	if err := t.resolve(ctx); err != nil {
		return err
	}
	if len(t.order) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	// Old index rows of resources that existed before.
	for _, tb := range sqlstore.Tables {
		var pks []int64
		for _, st := range t.order {
			if st.delMask&tb.Bit != 0 {
				pks = append(pks, st.pk)
			}
		}
		if len(pks) > 0 {
			b.Queue("DELETE FROM "+tb.Name+" WHERE res_pk = ANY($1)", pks)
		}
	}
	var ins, upd []*resState
	for _, st := range t.order {
		if st.inDB {
			upd = append(upd, st)
		} else {
			ins = append(ins, st)
		}
	}
	if n := len(ins); n > 0 {
		pk, ver, lu, mask := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n), make([]int32, 0, n)
		del, typ, id := make([]bool, 0, n), make([]string, 0, n), make([]string, 0, n)
		for _, st := range ins {
			r := st.row
			pk, ver, lu, mask = append(pk, st.pk), append(ver, r.version), append(lu, r.lu), append(mask, int32(r.mask))
			del, typ, id = append(del, r.deleted), append(typ, st.typ), append(id, st.id)
		}
		b.Queue(`INSERT INTO resources (pk, type, id, version, last_updated, deleted, idx_mask)
SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::bool[], $7::int4[])`, pk, typ, id, ver, lu, del, mask)
	}
	if n := len(upd); n > 0 {
		pk, ver, lu, mask := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n), make([]int32, 0, n)
		del := make([]bool, 0, n)
		for _, st := range upd {
			r := st.row
			pk, ver, lu, mask = append(pk, st.pk), append(ver, r.version), append(lu, r.lu), append(mask, int32(r.mask))
			del = append(del, r.deleted)
		}
		b.Queue(`UPDATE resources AS r SET version = u.version, last_updated = u.lu, deleted = u.del, idx_mask = u.mask
FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::bool[], $5::int4[]) AS u (pk, version, lu, del, mask) WHERE r.pk = u.pk`, pk, ver, lu, del, mask)
	}
	if n := len(t.versions); n > 0 {
		pk, ver, lu := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
		typ, id, method := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		del, body := make([]bool, 0, n), make([][]byte, 0, n)
		for _, v := range t.versions {
			pk, ver, lu = append(pk, v.st.pk), append(ver, v.version), append(lu, v.lu)
			typ, id, method = append(typ, v.st.typ), append(id, v.st.id), append(method, v.method)
			del, body = append(del, v.deleted), append(body, v.body)
		}
		b.Queue(`INSERT INTO resource_versions (res_pk, version, type, id, last_updated, deleted, method, body)
SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::bool[], $7::text[], $8::bytea[])`, pk, ver, typ, id, lu, del, method, body)
	}
	t.queueIndex(b)
	t.queueFullText(b)

	br := t.tx.SendBatch(ctx, b)
	for i := 0; i < b.Len(); i++ {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return t.fail("flush", err)
		}
	}
	if err := br.Close(); err != nil {
		return t.fail("flush", err)
	}
	// The database now holds what was buffered.
	for _, st := range t.order {
		st.inDB, st.dbMask = true, st.row.mask
		st.dirty, st.row, st.idx, st.delMask, st.ft = false, nil, nil, 0, nil
	}
	t.order, t.versions, t.pending = t.order[:0], t.versions[:0], 0
	return nil
}

// queueIndex adds one unnest() INSERT per index table that has rows.
func (t *tx) queueIndex(b *pgx.Batch) {
	for ti, tb := range sqlstore.Tables {
		var pks []int64
		var rtypes, params []string
		cols := make([]column, len(tb.Cols))
		for c, name := range tb.Cols {
			cols[c] = newColumn(elemType(tb.Name, name))
		}
		for _, st := range t.order {
			for _, r := range st.idx {
				if r.Table != ti {
					continue
				}
				pks, rtypes, params = append(pks, st.pk), append(rtypes, st.typ), append(params, r.Param)
				for c, v := range r.Vals {
					cols[c].add(v)
				}
			}
		}
		if len(pks) == 0 {
			continue
		}
		var sql strings.Builder
		sql.WriteString("INSERT INTO " + tb.Name + " (res_pk, rtype, param, " + strings.Join(tb.Cols, ", ") + ") SELECT * FROM unnest($1::int8[], $2::text[], $3::text[]")
		args := []any{pks, rtypes, params}
		for c, name := range tb.Cols {
			fmt.Fprintf(&sql, ", $%d::%s[]", c+4, elemType(tb.Name, name))
			args = append(args, cols[c].values())
		}
		sql.WriteString(")")
		b.Queue(sql.String(), args...)
	}
}

// column accumulates one typed array argument.
type column interface {
	add(v any)
	values() any
}

type textCol []string
type int8Col []int64
type float8Col []float64

func (c *textCol) add(v any)   { *c = append(*c, v.(string)) }
func (c *textCol) values() any { return []string(*c) }
func (c *int8Col) add(v any)   { *c = append(*c, v.(int64)) }
func (c *int8Col) values() any { return []int64(*c) }
func (c *float8Col) add(v any) { *c = append(*c, v.(float64)) }
func (c *float8Col) values() any {
	return []float64(*c)
}

func newColumn(elem string) column {
	switch elem {
	case "text":
		return &textCol{}
	case "int8":
		return &int8Col{}
	}
	return &float8Col{}
}
