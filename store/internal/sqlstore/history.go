package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"phix/store"
)

// History lists versions newest first and counts them.
func History(ctx context.Context, qr Querier, d Dialect, o store.HistoryOptions) ([]*store.Record, int, error) {
	if o.ID != "" && o.Type == "" {
		return nil, 0, fmt.Errorf("%w: instance history needs a type", store.ErrInvalid)
	}
	if o.Offset < 0 {
		return nil, 0, fmt.Errorf("%w: negative offset", store.ErrInvalid)
	}
	where := func(b *builder) {
		b.w(" WHERE 1 = 1")
		switch {
		case o.ID != "":
			b.w(" AND v.res_pk = (SELECT pk FROM resources WHERE type = ", b.arg(o.Type), " AND id = ", b.arg(o.ID), ")")
		case o.Type != "":
			b.w(" AND v.type = ", b.arg(o.Type))
		}
		if !o.Since.IsZero() {
			b.w(" AND v.last_updated >= ", b.arg(nanoBound(o.Since, false)))
		}
		if !o.At.IsZero() {
			b.w(" AND v.version = (SELECT MAX(v2.version) FROM resource_versions v2 WHERE v2.res_pk = v.res_pk AND v2.last_updated <= ",
				b.arg(nanoBound(o.At, true)), ")")
		}
	}
	b := &builder{d: d}
	b.w("SELECT COUNT(*) FROM resource_versions v")
	where(b)
	total, err := scalar(ctx, qr, "count history", b)
	if err != nil {
		return nil, 0, err
	}
	if total == 0 && o.ID != "" {
		if _, err := Read(ctx, qr, d, o.Type, o.ID); err != nil && !isDeleted(err) {
			return nil, 0, err
		}
	}
	count := o.Count
	if count == 0 {
		count = store.DefaultCount
	}
	if count < 0 || int64(o.Offset) >= total {
		return nil, int(total), nil
	}
	b = &builder{d: d}
	b.w("SELECT v.type, v.id, v.version, v.last_updated, v.deleted, v.method, v.body FROM resource_versions v")
	where(b)
	b.w(" ORDER BY v.last_updated DESC, v.type, v.id, v.version DESC LIMIT ", b.arg(int64(count)), " OFFSET ", b.arg(int64(o.Offset)))
	rows, err := qr.Query(ctx, b.sb.String(), b.args...)
	if err != nil {
		return nil, 0, DBError("history", err)
	}
	defer rows.Close()
	var out []*store.Record
	for rows.Next() {
		r := &store.Record{}
		var lu int64
		if err := rows.Scan(&r.Type, &r.ID, &r.Version, &lu, &r.Deleted, &r.Method, &r.Body); err != nil {
			return nil, 0, DBError("history", err)
		}
		r.LastUpdated = time.Unix(0, lu).UTC()
		if r.Deleted {
			r.Body = nil
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, DBError("history", err)
	}
	return out, int(total), nil
}

func isDeleted(err error) bool { return err != nil && errors.Is(err, store.ErrDeleted) }

func scalar(ctx context.Context, qr Querier, op string, b *builder) (int64, error) {
	rows, err := qr.Query(ctx, b.sb.String(), b.args...)
	if err != nil {
		return 0, DBError(op, err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, DBError(op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, DBError(op, err)
	}
	return n, nil
}
