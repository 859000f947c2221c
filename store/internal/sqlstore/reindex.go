package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"phix/store"
)

// ReindexItem is one resource a reindex batch loaded.
type ReindexItem struct {
	PK   int64
	Mask uint8 // idx_mask before the reindex
	Rec  *store.Record
}

// CheckReindexBatch validates a batch request.
func CheckReindexBatch(b *store.ReindexBatch) error {
	if b == nil || b.Extract == nil {
		return fmt.Errorf("%w: reindex batch without extractor", store.ErrInvalid)
	}
	if b.Limit < 1 || b.Limit > store.MaxReindexBatch {
		return fmt.Errorf("%w: reindex batch limit out of range", store.ErrInvalid)
	}
	for _, p := range b.Params {
		if p == "" {
			return fmt.Errorf("%w: empty parameter code", store.ErrInvalid)
		}
	}
	return nil
}

// typeFilter appends " AND r.type IN (...)" for a non-empty list.
func typeFilter(b *builder, types []string) {
	if len(types) > 0 {
		b.w(" AND r.type IN ", b.list(types))
	}
}

// LoadReindexBatch reads the next batch of current, non-deleted resources
// in key order (keyset pagination on resources.pk). forUpdate locks the
// rows (PostgreSQL), so a concurrent writer waits for the batch.
func LoadReindexBatch(ctx context.Context, qr Querier, d Dialect, types []string, after int64, limit int, forUpdate bool) ([]ReindexItem, error) {
	b := &builder{d: d}
	b.w("SELECT r.pk, r.idx_mask, r.type, r.id, r.version, v.last_updated, v.method, v.body",
		" FROM resources r JOIN resource_versions v ON v.res_pk = r.pk AND v.version = r.version",
		" WHERE r.pk > ", b.arg(after), " AND r.deleted = ", d.False())
	typeFilter(b, types)
	b.w(" ORDER BY r.pk LIMIT ", b.arg(int64(limit)))
	if forUpdate {
		b.w(" FOR UPDATE OF r")
	}
	rows, err := qr.Query(ctx, b.sb.String(), b.args...)
	if err != nil {
		return nil, DBError("reindex: load", err)
	}
	defer rows.Close()
	var out []ReindexItem
	for rows.Next() {
		var it ReindexItem
		var mask, lu int64
		r := &store.Record{}
		if err := rows.Scan(&it.PK, &mask, &r.Type, &r.ID, &r.Version, &lu, &r.Method, &r.Body); err != nil {
			return nil, DBError("reindex: load", err)
		}
		r.LastUpdated = time.Unix(0, lu).UTC()
		it.Mask, it.Rec = uint8(mask), r
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, DBError("reindex: load", err)
	}
	return out, nil
}

// ReindexRows extracts and encodes the new index rows of one item, keeping
// only the batch's parameters when it names some, and returns the
// resource's new idx_mask: the tables of the rows for a full reindex, or
// the old mask plus those tables for a partial one (a stale bit only costs
// a needless delete on the next write).
func ReindexRows(b *store.ReindexBatch, it ReindexItem) ([]Row, uint8, error) {
	entries, err := b.Extract(it.Rec)
	if err != nil {
		return nil, 0, err
	}
	if len(b.Params) > 0 {
		kept := entries[:0]
		for _, e := range entries {
			if inParams(b.Params, e.Param) {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	rows, mask, err := EncodeEntries(entries)
	if err != nil {
		return nil, 0, err
	}
	if len(b.Params) > 0 {
		mask |= it.Mask
	}
	return rows, mask, nil
}

// inParams reports whether an entry's parameter (or, for a composite
// component "P$k", its composite P) is one of params.
func inParams(params []string, code string) bool {
	if i := strings.IndexByte(code, '$'); i > 0 {
		code = code[:i]
	}
	for _, p := range params {
		if p == code {
			return true
		}
	}
	return false
}

// CountCurrent counts current, non-deleted resources of types above a key.
func CountCurrent(ctx context.Context, qr Querier, d Dialect, types []string, after int64) (int64, error) {
	b := &builder{d: d}
	b.w("SELECT COUNT(*) FROM resources r WHERE r.pk > ", b.arg(after), " AND r.deleted = ", d.False())
	typeFilter(b, types)
	rows, err := qr.Query(ctx, b.sb.String(), b.args...)
	if err != nil {
		return 0, DBError("reindex: count", err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, DBError("reindex: count", err)
		}
	}
	return n, DBError("reindex: count", rows.Err())
}

// DropBatch is how many index rows one DropIndex transaction removes.
const DropBatch = 5000

// JobFinished reports whether a job document is finished (the
// store.Reindexer.PutJob rule): its top-level "status" is a string other
// than "running". Migration 7 of both engines applies the same rule to
// the documents stored before it, on their bytes.
func JobFinished(doc []byte) bool {
	var d struct {
		Status *string `json:"status"`
	}
	if json.Unmarshal(doc, &d) != nil || d.Status == nil {
		return false
	}
	return *d.Status != "running"
}

// JobRows is what both drivers' result sets offer (pgx.Rows, *sql.Rows);
// the caller closes them.
type JobRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// JobDocs collects the (id, doc) rows of a job query; what names the query
// in errors.
func JobDocs(rows JobRows, what string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var doc []byte
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, DBError(what, err)
		}
		out[id] = doc
	}
	if err := rows.Err(); err != nil {
		return nil, DBError(what, err)
	}
	return out, nil
}

// JobChanges collects the (id, doc, seq) rows of a "jobs changed since seq"
// query and the highest seq among them (seq itself when there are none).
func JobChanges(rows JobRows, seq int64) (map[string][]byte, int64, error) {
	out, last := map[string][]byte{}, seq
	for rows.Next() {
		var id string
		var doc []byte
		var n int64
		if err := rows.Scan(&id, &doc, &n); err != nil {
			return nil, seq, DBError("reindex: jobs since", err)
		}
		out[id], last = doc, max(last, n)
	}
	if err := rows.Err(); err != nil {
		return nil, seq, DBError("reindex: jobs since", err)
	}
	return out, last, nil
}
