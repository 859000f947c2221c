package sqlstore

import (
	"context"
	"fmt"
	"time"

	"phix/store"
)

const (
	sqlRead = "SELECT v.version, v.last_updated, v.deleted, v.method, v.body" +
		" FROM resources r JOIN resource_versions v ON v.res_pk = r.pk AND v.version = r.version" +
		" WHERE r.type = $1 AND r.id = $2"
	sqlVRead = "SELECT v.version, v.last_updated, v.deleted, v.method, v.body" +
		" FROM resources r JOIN resource_versions v ON v.res_pk = r.pk" +
		" WHERE r.type = $1 AND r.id = $2 AND v.version = $3"
)

// FixedReads are the statements of Read and VRead, for backends to prepare
// up front.
func FixedReads(d Dialect) []string { return []string{d.Rebind(sqlRead), d.Rebind(sqlVRead)} }

// Read returns the current version of a resource.
func Read(ctx context.Context, qr Querier, d Dialect, typ, id string) (*store.Record, error) {
	if typ == "" || id == "" {
		return nil, fmt.Errorf("%w: read needs type and id", store.ErrInvalid)
	}
	return one(ctx, qr, "read", d.Rebind(sqlRead), typ, id)
}

// VRead returns one version of a resource. A deletion version comes back
// with ErrDeleted, as Read does.
func VRead(ctx context.Context, qr Querier, d Dialect, typ, id string, version int64) (*store.Record, error) {
	if typ == "" || id == "" {
		return nil, fmt.Errorf("%w: vread needs type and id", store.ErrInvalid)
	}
	if version < 1 {
		return nil, fmt.Errorf("%w: no such version", store.ErrNotFound)
	}
	return one(ctx, qr, "vread", d.Rebind(sqlVRead), typ, id, version)
}

func one(ctx context.Context, qr Querier, op, sql string, typ, id string, args ...any) (*store.Record, error) {
	rows, err := qr.Query(ctx, sql, append([]any{typ, id}, args...)...)
	if err != nil {
		return nil, DBError(op, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, DBError(op, err)
		}
		return nil, fmt.Errorf("%w: %s", store.ErrNotFound, op)
	}
	r := &store.Record{Type: typ, ID: id}
	var lu int64
	if err := rows.Scan(&r.Version, &lu, &r.Deleted, &r.Method, &r.Body); err != nil {
		return nil, DBError(op, err)
	}
	r.LastUpdated = time.Unix(0, lu).UTC()
	if r.Deleted {
		r.Body = nil
		return r, store.ErrDeleted
	}
	return r, nil
}
