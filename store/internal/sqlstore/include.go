package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"phix/fhir/search"
	"phix/store"
)

// chunk bounds the number of keys bound in one statement.
const chunk = 500

// node is a resource reached by a search or an include.
type node struct {
	pk      int64
	typ, id string
}

// includer collects the resources _include/_revinclude add to one page.
type includer struct {
	ctx   context.Context
	qr    Querier
	d     Dialect
	seen  map[int64]bool
	found []node // in discovery order, never a match
	next  []node // found in the current round
	limit int
}

func (in *includer) add(n node) error {
	if in.seen[n.pk] {
		return nil
	}
	if len(in.found)+len(in.next) >= in.limit {
		return fmt.Errorf("%w: _include/_revinclude would add more than %d resources", store.ErrTooMany, in.limit)
	}
	in.seen[n.pk] = true
	in.next = append(in.next, n)
	return nil
}

// includes resolves _include and _revinclude for one page of matches. Each
// included resource appears once and never duplicates a match. The first
// round applies every include to the matches; each later round applies the
// :iterate ones to what the previous round added, up to a fixed point. Every
// statement is keyed by the keys (or type and ids) of the resources at hand,
// so the cost follows the page and its includes, not the database size; the
// total is bounded by q.MaxIncluded and the rounds by q.MaxIncludeRounds, and
// a search exceeding either fails with store.ErrTooMany.
func includes(ctx context.Context, qr Querier, d Dialect, q *search.Query, matches []*store.Record, pks []int64) ([]*store.Record, error) {
	for _, incs := range [][]search.Include{q.Include, q.RevInclude} {
		for _, inc := range incs {
			if inc.Source == "" || inc.Param == "" {
				return nil, fmt.Errorf("%w: _include/_revinclude needs source and parameter", store.ErrInvalid)
			}
		}
	}
	in := &includer{ctx: ctx, qr: qr, d: d, seen: make(map[int64]bool, len(pks)), limit: q.MaxIncluded}
	if in.limit <= 0 {
		in.limit = store.DefaultMaxIncluded
	}
	rounds := q.MaxIncludeRounds
	if rounds <= 0 {
		rounds = store.DefaultMaxIncludeRounds
	}
	frontier := make([]node, len(matches))
	for i, m := range matches {
		in.seen[pks[i]] = true
		frontier[i] = node{pk: pks[i], typ: m.Type, id: m.ID}
	}
	for round := 0; len(frontier) > 0; round++ {
		if round > rounds {
			return nil, fmt.Errorf("%w: :iterate did not settle within %d rounds", store.ErrTooMany, rounds)
		}
		applied := false
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			applied = true
			if err := in.forward(inc, frontier); err != nil {
				return nil, err
			}
		}
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			applied = true
			if err := in.reverse(inc, frontier); err != nil {
				return nil, err
			}
		}
		if !applied {
			break
		}
		in.found = append(in.found, in.next...)
		frontier, in.next = in.next, nil
	}
	if len(in.found) == 0 {
		return nil, nil
	}
	keys := make([]int64, len(in.found))
	for i, n := range in.found {
		keys[i] = n.pk
	}
	var out []*store.Record
	for part := range slices.Chunk(keys, chunk) {
		b := &builder{d: d}
		b.w("SELECT ", currentCols, currentFrom, " WHERE r.deleted = ", d.False(), " AND r.pk IN ", b.int64List(part), " ORDER BY r.type, r.id")
		recs, _, err := queryCurrent(ctx, qr, "load included", b)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	slices.SortFunc(out, func(a, b *store.Record) int {
		return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// forward adds the resources that inc's reference parameter of the frontier
// resources points at.
func (in *includer) forward(inc search.Include, frontier []node) error {
	var src []int64
	for _, n := range frontier {
		if inc.Source == "*" || n.typ == inc.Source {
			src = append(src, n.pk)
		}
	}
	for part := range slices.Chunk(src, chunk) {
		b := &builder{d: in.d}
		b.w("SELECT DISTINCT r.pk, r.type, r.id FROM idx_reference x JOIN resources r ON r.type = x.ref_type AND r.id = x.ref_id",
			" WHERE r.deleted = ", in.d.False(), " AND x.res_pk IN ", b.int64List(part))
		if inc.Param != "*" {
			b.w(" AND x.param = ", b.arg(inc.Param))
		}
		if inc.Target != "" {
			b.w(" AND x.ref_type = ", b.arg(inc.Target))
		}
		if err := in.collect("include", b); err != nil {
			return err
		}
	}
	return nil
}

// reverse adds the resources whose reference parameter points at a frontier
// resource.
func (in *includer) reverse(inc search.Include, frontier []node) error {
	// Group by type: references name type and id.
	byType := map[string][]string{}
	var types []string
	for _, n := range frontier {
		if inc.Target != "" && n.typ != inc.Target {
			continue
		}
		if _, ok := byType[n.typ]; !ok {
			types = append(types, n.typ)
		}
		byType[n.typ] = append(byType[n.typ], n.id)
	}
	for _, t := range types {
		for part := range slices.Chunk(byType[t], chunk) {
			b := &builder{d: in.d}
			b.w("SELECT DISTINCT r.pk, r.type, r.id FROM idx_reference x JOIN resources r ON r.pk = x.res_pk",
				" WHERE r.deleted = ", in.d.False(), " AND x.ref_type = ", b.arg(t), " AND x.ref_id IN ", b.list(part))
			if inc.Source != "*" {
				b.w(" AND x.rtype = ", b.arg(inc.Source))
			}
			if inc.Param != "*" {
				b.w(" AND x.param = ", b.arg(inc.Param))
			}
			if err := in.collect("revinclude", b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (in *includer) collect(op string, b *builder) error {
	rows, err := in.qr.Query(in.ctx, b.sb.String(), b.args...)
	if err != nil {
		return DBError(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n node
		if err := rows.Scan(&n.pk, &n.typ, &n.id); err != nil {
			return DBError(op, err)
		}
		if err := in.add(n); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return DBError(op, err)
	}
	return nil
}
