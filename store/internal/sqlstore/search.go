package sqlstore

import (
	"context"
	"fmt"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// currentCols selects a current version: resources r joined to its version v.
const currentCols = "r.pk, r.type, r.id, r.version, v.last_updated, v.method, v.body"

// currentFrom is the FROM clause that pairs a resource with its current version.
const currentFrom = " FROM resources r JOIN resource_versions v ON v.res_pk = r.pk AND v.version = r.version"

// Search executes q over current, non-deleted resources.
func Search(ctx context.Context, qr Querier, d Dialect, q *search.Query) (*store.SearchResult, error) {
	if q == nil {
		return nil, fmt.Errorf("%w: nil query", store.ErrInvalid)
	}
	if q.Offset < 0 {
		return nil, fmt.Errorf("%w: negative offset", store.ErrInvalid)
	}
	sc := scope(nil)
	if q.Type != "" {
		sc = scope{q.Type}
	} else if len(q.Types) > 0 {
		sc = scope(q.Types)
	}
	now := time.Now()
	// The most selective clause drives: its index rows give the candidate
	// resources; the other clauses probe each candidate's own index rows.
	drive, rank := -1, rankNone
	for i := range q.Clauses {
		if r := selectivity(&q.Clauses[i]); r < rank {
			drive, rank = i, r
		}
	}
	from := func(b *builder) error {
		if drive < 0 {
			b.w(" FROM resources r")
			return nil
		}
		b.w(" FROM (")
		if err := b.driver(&q.Clauses[drive], sc, now); err != nil {
			return err
		}
		b.w(") d JOIN resources r ON r.pk = d.res_pk")
		return nil
	}
	where := func(b *builder) error {
		b.w(" WHERE r.deleted = ", d.False())
		if len(sc) == 1 {
			b.w(" AND r.type = ", b.arg(sc[0]))
		} else if len(sc) > 1 {
			b.w(" AND r.type IN ", b.list(sc))
		}
		for i := range q.Clauses {
			if i == drive {
				continue
			}
			b.w(" AND ")
			if err := b.clause(&q.Clauses[i], sc, now); err != nil {
				return err
			}
		}
		return nil
	}

	res := &store.SearchResult{Total: -1}
	if q.Total != search.TotalNone {
		b := &builder{d: d}
		b.w("SELECT COUNT(*)")
		if err := from(b); err != nil {
			return nil, err
		}
		if err := where(b); err != nil {
			return nil, err
		}
		rows, err := qr.Query(ctx, b.sb.String(), b.args...)
		if err != nil {
			return nil, DBError("count search", err)
		}
		var n int64
		for rows.Next() {
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return nil, DBError("count search", err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, DBError("count search", err)
		}
		res.Total = int(n)
	}

	count := q.Count
	if count == 0 {
		count = store.DefaultCount
	}
	if count < 0 || (res.Total >= 0 && q.Offset >= res.Total) {
		return res, nil
	}
	b := &builder{d: d}
	b.w("SELECT ", currentCols)
	if err := from(b); err != nil {
		return nil, err
	}
	b.w(" JOIN resource_versions v ON v.res_pk = r.pk AND v.version = r.version")
	if err := where(b); err != nil {
		return nil, err
	}
	b.w(" ORDER BY ")
	for _, s := range q.Sort {
		if err := b.sortKey(s, sc); err != nil {
			return nil, err
		}
		b.w(", ")
	}
	b.w("r.type, r.id LIMIT ", b.arg(int64(count)), " OFFSET ", b.arg(int64(q.Offset)))
	recs, pks, err := queryCurrent(ctx, qr, "search", b)
	if err != nil {
		return nil, err
	}
	res.Matches = recs
	if len(recs) > 0 && (len(q.Include) > 0 || len(q.RevInclude) > 0) {
		inc, err := includes(ctx, qr, d, q, recs, pks)
		if err != nil {
			return nil, err
		}
		res.Included = inc
	}
	return res, nil
}

// sortKey writes one ORDER BY term: the resource's smallest value for an
// ascending key, its largest for a descending one; resources without a value
// sort last either way.
func (b *builder) sortKey(s search.Sort, sc scope) error {
	if s.Param == nil {
		return fmt.Errorf("%w: sort without parameter", store.ErrInvalid)
	}
	dir := " ASC"
	agg := "MIN"
	if s.Descending {
		dir, agg = " DESC", "MAX"
	}
	switch s.Param.Code {
	case "_id":
		b.w("r.id", dir)
		return nil
	case "_lastUpdated":
		b.w("r.last_updated", dir)
		return nil
	}
	t := TableFor(s.Param.Type)
	var col string
	switch t {
	case TString:
		col = "x.norm"
	case TToken:
		col = "x.code"
	case TDate:
		col = "x.lo"
		if s.Descending {
			col = "x.hi"
		}
	case TNumber, TQuantity:
		col = "x.num"
	case TReference:
		col = "CASE WHEN x.url <> '' THEN x.url ELSE x.ref_type || '/' || x.ref_id END"
	case TURI:
		col = "x.url"
	default:
		return fmt.Errorf("%w: sort on %s parameter %s", store.ErrUnsupported, s.Param.Type, s.Param.Code)
	}
	b.w("(SELECT ", agg, "(", col, ") FROM ", Tables[t].Name, " x WHERE x.res_pk = r.pk AND x.param = ", b.arg(s.Param.Code), ")", dir, " NULLS LAST")
	return nil
}

// queryCurrent runs a query selecting currentCols and returns the records and
// their keys.
func queryCurrent(ctx context.Context, qr Querier, op string, b *builder) ([]*store.Record, []int64, error) {
	rows, err := qr.Query(ctx, b.sb.String(), b.args...)
	if err != nil {
		return nil, nil, DBError(op, err)
	}
	defer rows.Close()
	var recs []*store.Record
	var pks []int64
	for rows.Next() {
		var pk, lu int64
		r := &store.Record{}
		if err := rows.Scan(&pk, &r.Type, &r.ID, &r.Version, &lu, &r.Method, &r.Body); err != nil {
			return nil, nil, DBError(op, err)
		}
		r.LastUpdated = time.Unix(0, lu).UTC()
		recs = append(recs, r)
		pks = append(pks, pk)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, DBError(op, err)
	}
	return recs, pks, nil
}
