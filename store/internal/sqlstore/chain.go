package sqlstore

import (
	"fmt"
	"strconv"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// maxLinks bounds a clause's chain whatever the parser allowed: each link is
// one nested subquery.
const maxLinks = 16

// chain writes a chained or _has clause on resources alias r. A forward link
// is "prev.pk IN (the resources whose reference param points at a resource
// that satisfies the rest)", so an engine can start from the selective end of
// the chain; a reverse (_has) link is a correlated EXISTS on the referencing
// resources, probed through idx_reference_ref (ref_id, rtype, param,
// ref_type). Both engines receive the same SQL.
func (b *builder) chain(c *search.Clause, sc scope, now time.Time) error {
	return b.chainOn(c, "r", sc, now)
}

// chainOn writes the chain condition on resources alias ra.
func (b *builder) chainOn(c *search.Clause, ra string, sc scope, now time.Time) error {
	if len(c.Chain) > maxLinks {
		return fmt.Errorf("%w: chain of %d links exceeds %d", store.ErrInvalid, len(c.Chain), maxLinks)
	}
	prev, prevTypes := ra, sc
	for i, l := range c.Chain {
		if l.Param == nil || len(l.Types) == 0 {
			return fmt.Errorf("%w: chain link %d without parameter or types", store.ErrInvalid, i)
		}
		if l.Param.Type != search.TypeReference {
			return fmt.Errorf("%w: chain link %d is not a reference parameter", store.ErrInvalid, i)
		}
		x, n := "c"+strconv.Itoa(i), "n"+strconv.Itoa(i)
		if !l.Reverse {
			b.w(prev, ".pk IN (SELECT ", x, ".res_pk FROM idx_reference ", x,
				" JOIN resources ", n, " ON ", n, ".type = ", x, ".ref_type AND ", n, ".id = ", x, ".ref_id WHERE ",
				b.rtypeCond(x, prevTypes), " AND ", x, ".param = ", b.arg(l.Param.Code),
				" AND ", b.typeCond(n, l.Types), " AND ", n, ".deleted = ", b.d.False(), " AND ")
		} else {
			if len(l.Types) != 1 {
				return fmt.Errorf("%w: _has link %d needs one source type", store.ErrInvalid, i)
			}
			b.w("EXISTS (SELECT 1 FROM idx_reference ", x, " JOIN resources ", n, " ON ", n, ".pk = ", x, ".res_pk WHERE ",
				x, ".ref_id = ", prev, ".id AND ", x, ".rtype = ", b.arg(l.Types[0]), " AND ", x, ".param = ", b.arg(l.Param.Code),
				" AND ", x, ".ref_type = ", prev, ".type AND ", n, ".deleted = ", b.d.False(), " AND ")
		}
		prev, prevTypes = n, scope(l.Types)
	}
	if err := b.terminal(c, prev, prevTypes, now); err != nil {
		return err
	}
	for range c.Chain {
		b.w(")")
	}
	return nil
}

// terminal writes the chain's last condition on alias ra: an IN over the
// parameter's index when it is selective (so the engine can start there),
// else the usual correlated probe.
func (b *builder) terminal(c *search.Clause, ra string, sc scope, now time.Time) error {
	plain := *c
	plain.Chain = nil
	if selectivity(&plain) < rankNone {
		b.w(ra, ".pk IN (")
		if err := b.driver(&plain, sc, now); err != nil {
			return err
		}
		b.w(")")
		return nil
	}
	return b.clauseOn(&plain, ra, now)
}

// typeCond0 restricts a resources alias to the scope (no restriction for
// all types).
func (b *builder) typeCond0(alias string, sc scope) string {
	if len(sc) == 0 {
		return "1 = 1"
	}
	return b.typeCond(alias, sc)
}

// typeCond restricts a resources alias to types.
func (b *builder) typeCond(alias string, types []string) string {
	if len(types) == 1 {
		return alias + ".type = " + b.arg(types[0])
	}
	return alias + ".type IN " + b.list(types)
}
