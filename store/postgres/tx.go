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
const flushRows = 20000

type resKey struct{ typ, id string }

// resState is what the transaction knows of one resource it touched.
type resState struct {
	pk      int64
	version int64 // current version as this transaction sees it (0: none)
	inDB    bool  // the resources row exists in the database (not only buffered)
	dbMask  uint8 // idx tables holding rows for it in the database
	typ     string
}

type resRow struct {
	pk, version, lu int64
	deleted         bool
	mask            uint8
	typ, id         string
}

type verRow struct {
	pk, version, lu int64
	typ, id, method string
	deleted         bool
	body            []byte
}

// tx is a write transaction with a write buffer.
type tx struct {
	s    *Store
	tx   pgx.Tx
	done bool
	lost bool // the transaction lost a serialization race and must be rerun

	known map[resKey]*resState
	byPK  map[int64]*resState

	newRes   map[int64]*resRow // resources rows to insert
	updRes   map[int64]*resRow // resources rows to update
	versions []verRow
	idx      map[int64][]sqlstore.Row // index rows to insert, per resource (replacing)
	idxOrder []int64
	del      map[int64]uint8 // database index rows to delete, per resource
	pending  int
}

func newTx(s *Store, ptx pgx.Tx) *tx {
	return &tx{
		s: s, tx: ptx,
		known: map[resKey]*resState{}, byPK: map[int64]*resState{},
		newRes: map[int64]*resRow{}, updRes: map[int64]*resRow{},
		idx: map[int64][]sqlstore.Row{}, del: map[int64]uint8{},
	}
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

// Put implements store.Tx. The preconditions are checked against the
// database (locking the resource row) at once; the rows themselves are
// buffered until the next flush.
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
	key := resKey{w.Type, w.ID}
	st := t.known[key]
	if st == nil {
		st = &resState{typ: w.Type}
		var m int32
		err := t.tx.QueryRow(ctx, sqlLookup, w.Type, w.ID).Scan(&st.pk, &st.version, &m)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, t.fail("put: lookup", err)
		default:
			st.inDB, st.dbMask = true, uint8(m)
		}
		t.known[key] = st
		if st.pk != 0 {
			t.byPK[st.pk] = st
		}
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
		t.byPK[pk] = st
	}
	lu := w.LastUpdated.UnixNano()
	row := &resRow{pk: st.pk, version: w.Version, lu: lu, deleted: w.Deleted, mask: mask, typ: w.Type, id: w.ID}
	if st.inDB {
		t.updRes[st.pk] = row
	} else {
		t.newRes[st.pk] = row
	}
	body := w.Body
	if w.Deleted || body == nil {
		body = []byte{}
	}
	t.versions = append(t.versions, verRow{pk: st.pk, version: w.Version, lu: lu, typ: w.Type, id: w.ID, method: w.Method, deleted: w.Deleted, body: body})
	if st.dbMask != 0 {
		t.del[st.pk] |= st.dbMask
		st.dbMask = 0
	}
	if _, ok := t.idx[st.pk]; !ok {
		t.idxOrder = append(t.idxOrder, st.pk)
	} else {
		t.pending -= len(t.idx[st.pk])
	}
	t.idx[st.pk] = rows
	t.pending += len(rows) + 2
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

// flush sends the buffered writes as one pipelined batch.
func (t *tx) flush(ctx context.Context) error {
	if t.lost {
		return errLost
	}
	if len(t.versions) == 0 && len(t.del) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	// Old index rows of resources that existed before.
	for i, tb := range sqlstore.Tables {
		var pks []int64
		for pk, m := range t.del {
			if m&tb.Bit != 0 {
				pks = append(pks, pk)
			}
		}
		if len(pks) > 0 {
			b.Queue("DELETE FROM "+sqlstore.Tables[i].Name+" WHERE res_pk = ANY($1)", pks)
		}
	}
	if n := len(t.newRes); n > 0 {
		pk, ver, lu, mask := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n), make([]int32, 0, n)
		del, typ, id := make([]bool, 0, n), make([]string, 0, n), make([]string, 0, n)
		for _, r := range t.newRes {
			pk, ver, lu, mask = append(pk, r.pk), append(ver, r.version), append(lu, r.lu), append(mask, int32(r.mask))
			del, typ, id = append(del, r.deleted), append(typ, r.typ), append(id, r.id)
		}
		b.Queue(`INSERT INTO resources (pk, type, id, version, last_updated, deleted, idx_mask)
SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::bool[], $7::int4[])`, pk, typ, id, ver, lu, del, mask)
	}
	if n := len(t.updRes); n > 0 {
		pk, ver, lu, mask := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n), make([]int32, 0, n)
		del := make([]bool, 0, n)
		for _, r := range t.updRes {
			pk, ver, lu, mask = append(pk, r.pk), append(ver, r.version), append(lu, r.lu), append(mask, int32(r.mask))
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
			pk, ver, lu = append(pk, v.pk), append(ver, v.version), append(lu, v.lu)
			typ, id, method = append(typ, v.typ), append(id, v.id), append(method, v.method)
			del, body = append(del, v.deleted), append(body, v.body)
		}
		b.Queue(`INSERT INTO resource_versions (res_pk, version, type, id, last_updated, deleted, method, body)
SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::bool[], $7::text[], $8::bytea[])`, pk, ver, typ, id, lu, del, method, body)
	}
	t.queueIndex(b)

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
	for pk, rows := range t.idx {
		st := t.byPK[pk]
		st.inDB = true
		st.dbMask = 0
		for _, r := range rows {
			st.dbMask |= sqlstore.Tables[r.Table].Bit
		}
	}
	t.newRes, t.updRes = map[int64]*resRow{}, map[int64]*resRow{}
	t.versions, t.idx, t.idxOrder = t.versions[:0], map[int64][]sqlstore.Row{}, t.idxOrder[:0]
	t.del, t.pending = map[int64]uint8{}, 0
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
		for _, pk := range t.idxOrder {
			st := t.byPK[pk]
			for _, r := range t.idx[pk] {
				if r.Table != ti {
					continue
				}
				pks, rtypes, params = append(pks, pk), append(rtypes, st.typ), append(params, r.Param)
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
