package sqlstore

import (
	"fmt"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// compositeClause matches a composite parameter: for each value (ORed), some
// group of the resource's component entries ("P$0", "P$1"... sharing grp)
// in which every component matches its part of the value. Group 0 (plain
// entries) never takes part.
func (b *builder) compositeClause(c *search.Clause, ra string, now time.Time) error {
	comps := c.Param.ComponentParams
	if len(comps) == 0 {
		return fmt.Errorf("%w: composite parameter %s without components", store.ErrUnsupported, c.Param.Code)
	}
	tables := make([]int, len(comps))
	for k, cp := range comps {
		if cp == nil || TableFor(cp.Type) < 0 {
			return fmt.Errorf("%w: component %d of composite parameter %s", store.ErrUnsupported, k, c.Param.Code)
		}
		tables[k] = TableFor(cp.Type)
	}
	first := search.ComponentCode(c.Param.Code, 0)
	switch c.Modifier {
	case "missing":
		b.w("(")
		for i, v := range c.Values {
			if i > 0 {
				b.w(" OR ")
			}
			op := "EXISTS"
			if v.Missing {
				op = "NOT EXISTS"
			}
			b.w(op, " (SELECT 1 FROM ", Tables[tables[0]].Name, " x WHERE x.res_pk = ", ra, ".pk AND x.param = ", b.arg(first), " AND x.grp > 0)")
		}
		b.w(")")
		return nil
	case "":
	default:
		return fmt.Errorf("%w: modifier :%s on composite parameter %s", store.ErrUnsupported, c.Modifier, c.Param.Code)
	}
	b.w("(")
	for i := range c.Values {
		v := &c.Values[i]
		if len(v.Components) != len(comps) {
			return fmt.Errorf("%w: composite value of %s has %d parts, want %d", store.ErrInvalid, c.Param.Code, len(v.Components), len(comps))
		}
		if i > 0 {
			b.w(" OR ")
		}
		b.w("EXISTS (SELECT 1 FROM ", Tables[tables[0]].Name, " g WHERE g.res_pk = ", ra, ".pk AND g.param = ", b.arg(first), " AND g.grp > 0")
		for k, cp := range comps {
			code := search.ComponentCode(c.Param.Code, k)
			part := search.Clause{Param: &search.Param{Code: code, Type: cp.Type, Targets: cp.Targets}, Values: []search.Value{v.Components[k]}}
			b.w(" AND EXISTS (SELECT 1 FROM ", Tables[tables[k]].Name, " x WHERE x.res_pk = g.res_pk AND x.grp = g.grp AND x.param = ", b.arg(code), " AND (")
			if err := b.values(&part, tables[k], now); err != nil {
				return err
			}
			b.w("))")
		}
		b.w(")")
	}
	b.w(")")
	return nil
}
