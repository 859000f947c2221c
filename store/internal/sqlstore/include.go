package sqlstore

import (
	"context"
	"fmt"
	"slices"

	"phix/fhir/search"
	"phix/store"
)

// chunk bounds the number of keys bound in one statement.
const chunk = 500

// includes resolves _include and _revinclude for one page of matches. Each
// included resource appears once and never duplicates a match.
func includes(ctx context.Context, qr Querier, d Dialect, q *search.Query, matches []*store.Record, pks []int64) ([]*store.Record, error) {
	seen := make(map[int64]bool, len(pks))
	for _, pk := range pks {
		seen[pk] = true
	}
	var found []int64
	add := func(pk int64) {
		if !seen[pk] {
			seen[pk] = true
			found = append(found, pk)
		}
	}
	for _, inc := range q.Include {
		if inc.Source == "" || inc.Param == "" {
			return nil, fmt.Errorf("%w: _include needs source and parameter", store.ErrInvalid)
		}
		// Only matches of the source type contribute.
		var src []int64
		for i, m := range matches {
			if inc.Source == "*" || m.Type == inc.Source {
				src = append(src, pks[i])
			}
		}
		for part := range slices.Chunk(src, chunk) {
			b := &builder{d: d}
			b.w("SELECT DISTINCT r.pk FROM idx_reference x JOIN resources r ON r.type = x.ref_type AND r.id = x.ref_id",
				" WHERE r.deleted = ", d.False(), " AND x.res_pk IN ", b.int64List(part))
			if inc.Param != "*" {
				b.w(" AND x.param = ", b.arg(inc.Param))
			}
			if inc.Target != "" {
				b.w(" AND x.ref_type = ", b.arg(inc.Target))
			}
			if err := collectKeys(ctx, qr, "include", b, add); err != nil {
				return nil, err
			}
		}
	}
	for _, inc := range q.RevInclude {
		if inc.Source == "" || inc.Param == "" {
			return nil, fmt.Errorf("%w: _revinclude needs source and parameter", store.ErrInvalid)
		}
		// Group the matches by type: references name type and id.
		byType := map[string][]string{}
		var types []string
		for _, m := range matches {
			if inc.Target != "" && m.Type != inc.Target {
				continue
			}
			if _, ok := byType[m.Type]; !ok {
				types = append(types, m.Type)
			}
			byType[m.Type] = append(byType[m.Type], m.ID)
		}
		for _, t := range types {
			for part := range slices.Chunk(byType[t], chunk) {
				b := &builder{d: d}
				b.w("SELECT DISTINCT x.res_pk FROM idx_reference x WHERE x.ref_type = ", b.arg(t), " AND x.ref_id IN ", b.list(part))
				if inc.Source != "*" {
					b.w(" AND x.rtype = ", b.arg(inc.Source))
				}
				if inc.Param != "*" {
					b.w(" AND x.param = ", b.arg(inc.Param))
				}
				if err := collectKeys(ctx, qr, "revinclude", b, add); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	var out []*store.Record
	for part := range slices.Chunk(found, chunk) {
		b := &builder{d: d}
		b.w("SELECT ", currentCols, currentFrom, " WHERE r.deleted = ", d.False(), " AND r.pk IN ", b.int64List(part), " ORDER BY r.type, r.id")
		recs, _, err := queryCurrent(ctx, qr, "load included", b)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func collectKeys(ctx context.Context, qr Querier, op string, b *builder, add func(int64)) error {
	rows, err := qr.Query(ctx, b.sb.String(), b.args...)
	if err != nil {
		return DBError(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var pk int64
		if err := rows.Scan(&pk); err != nil {
			return DBError(op, err)
		}
		add(pk)
	}
	if err := rows.Err(); err != nil {
		return DBError(op, err)
	}
	return nil
}
