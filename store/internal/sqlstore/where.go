package sqlstore

import (
	"fmt"
	"math"
	"strings"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// scope is the set of resource types a search runs over: one type, a list
// (_type), or all (nil).
type scope []string

// rtypeCond restricts an index table alias to the scope.
func (b *builder) rtypeCond(alias string, sc scope) string {
	switch len(sc) {
	case 0:
		return "1 = 1"
	case 1:
		return alias + ".rtype = " + b.arg(sc[0])
	}
	return alias + ".rtype IN " + b.list(sc)
}

// checkClause validates a clause and returns its index table (-1 for _id
// and _lastUpdated, which use the resources columns).
func checkClause(c *search.Clause) (int, error) {
	if c.Param == nil {
		return 0, fmt.Errorf("%w: search clause without parameter", store.ErrInvalid)
	}
	if len(c.Values) == 0 {
		return 0, fmt.Errorf("%w: search clause %s has no values", store.ErrInvalid, c.Param.Code)
	}
	switch c.Param.Code {
	case "_id", "_lastUpdated":
		return -1, nil
	case "_has", "_text", "_content", "_list", "_query", "_filter":
		return 0, fmt.Errorf("%w: parameter %s", store.ErrUnsupported, c.Param.Code)
	}
	t := TableFor(c.Param.Type)
	if t < 0 {
		return 0, fmt.Errorf("%w: parameter type %s (%s)", store.ErrUnsupported, c.Param.Type, c.Param.Code)
	}
	if c.Modifier == "not" && t != TToken {
		return 0, fmt.Errorf("%w: modifier :not on %s parameter %s", store.ErrUnsupported, c.Param.Type, c.Param.Code)
	}
	return t, nil
}

// Selectivity ranks: how well a clause can drive a search from its index. A
// lower rank drives; rankNone never does.
const (
	rankKey    = iota // equality on a reference, id, exact string or uri
	rankChain         // a chain whose terminal parameter is rankKey..rankRange
	rankToken         // token equality (codes are often shared by many resources)
	rankPrefix        // a string or uri prefix, token :text
	rankRange         // a bounded number or date range
	rankNone          // negations, :missing, open ranges, composites
)

// selectivity ranks a clause (see rankKey...).
func selectivity(c *search.Clause) int {
	if len(c.Chain) > 0 {
		plain := *c
		plain.Chain = nil
		if selectivity(&plain) < rankNone {
			return rankChain
		}
		return rankNone
	}
	if search.IsFullText(c.Param) {
		// A word may occur in a large share of the resources: any key,
		// token or prefix drives better, the full-text index better than
		// an open scan.
		return rankRange
	}
	t, err := checkClause(c)
	if err != nil || c.Modifier == "missing" || c.Modifier == "not" {
		return rankNone
	}
	if t < 0 {
		if c.Param.Code == "_id" && c.Modifier == "" {
			return rankKey
		}
		return rankNone
	}
	switch t {
	case TToken:
		if c.Modifier == "text" {
			return rankPrefix
		}
		return rankToken
	case TReference:
		return rankKey
	case TString:
		if c.Modifier == "exact" {
			return rankKey
		}
		if c.Modifier == "" {
			return rankPrefix
		}
	case TURI:
		if c.Modifier == "" || c.Modifier == "above" {
			return rankKey
		}
		return rankPrefix
	case TDate, TNumber, TQuantity:
		for _, v := range c.Values {
			if v.Prefix != "" && v.Prefix != search.PrefixEq && v.Prefix != search.PrefixAp {
				return rankNone
			}
		}
		return rankRange
	}
	return rankNone
}

// driver writes the clause as "SELECT DISTINCT x.res_pk ..." over its index
// table, the set a search starts from.
func (b *builder) driver(c *search.Clause, sc scope, now time.Time) error {
	if len(c.Chain) > 0 {
		// The resources of the scope whose chain reaches a match: the
		// chain's own subqueries, on the index rows instead of r.
		b.w("SELECT d0.pk AS res_pk FROM resources d0 WHERE ", b.typeCond0("d0", sc), " AND ")
		return b.chainOn(c, "d0", sc, now)
	}
	if search.IsFullText(c.Param) {
		return b.fullTextSet(c, " AS res_pk")
	}
	t, err := checkClause(c)
	if err != nil {
		return err
	}
	if c.Param.Code == "_id" {
		// Ids live on the resources rows: (type, id) is unique.
		b.w("SELECT d0.pk AS res_pk FROM resources d0 WHERE ", b.typeCond0("d0", sc), " AND ")
		return b.idClause(c, "d0")
	}
	b.w("SELECT DISTINCT x.res_pk FROM ", Tables[t].Name, " x WHERE ", b.rtypeCond("x", sc), " AND x.param = ", b.arg(c.Param.Code), " AND (")
	if err := b.values(c, t, now); err != nil {
		return err
	}
	b.w(")")
	return nil
}

// clause writes the condition for one Clause (values ORed) on resources alias
// r, as a correlated EXISTS probe of the resource's own index rows, or for a
// chained clause, of the index rows of the resources its links reach.
func (b *builder) clause(c *search.Clause, sc scope, now time.Time) error {
	if len(c.Chain) > 0 {
		return b.chain(c, sc, now)
	}
	return b.clauseOn(c, "r", now)
}

// clauseOn writes the condition for c's own parameter on resources alias ra.
func (b *builder) clauseOn(c *search.Clause, ra string, now time.Time) error {
	if c.Param != nil && c.Param.Type == search.TypeComposite && len(c.Values) > 0 {
		return b.compositeClause(c, ra, now)
	}
	if search.IsFullText(c.Param) {
		return b.fullTextClause(c, ra)
	}
	t, err := checkClause(c)
	if err != nil {
		return err
	}
	switch c.Param.Code {
	case "_id":
		return b.idClause(c, ra)
	case "_lastUpdated":
		return b.lastUpdatedClause(c, ra, now)
	}
	tbl := Tables[t].Name
	if c.Modifier == "missing" {
		b.w("(")
		for i, v := range c.Values {
			if i > 0 {
				b.w(" OR ")
			}
			op := "EXISTS"
			if v.Missing {
				op = "NOT EXISTS"
			}
			b.w(op, " (SELECT 1 FROM ", tbl, " x WHERE x.res_pk = ", ra, ".pk AND x.param = ", b.arg(c.Param.Code), ")")
		}
		b.w(")")
		return nil
	}
	op := "EXISTS"
	if c.Modifier == "not" {
		op = "NOT EXISTS"
	}
	b.w(op, " (SELECT 1 FROM ", tbl, " x WHERE x.res_pk = ", ra, ".pk AND x.param = ", b.arg(c.Param.Code), " AND (")
	if err := b.values(c, t, now); err != nil {
		return err
	}
	b.w("))")
	return nil
}

// values writes the clause's values, ORed, as conditions on index alias x.
func (b *builder) values(c *search.Clause, t int, now time.Time) error {

	for i := range c.Values {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(")
		var err error
		switch t {
		case TString:
			err = b.stringValue(c, &c.Values[i])
		case TToken:
			err = b.tokenValue(c, &c.Values[i])
		case TDate:
			err = b.dateValue(&c.Values[i], now)
		case TNumber, TQuantity:
			err = b.numberValue(c, &c.Values[i], t == TQuantity)
		case TReference:
			err = b.referenceValue(c, &c.Values[i])
		case TURI:
			err = b.uriValue(c, &c.Values[i])
		}
		if err != nil {
			return err
		}
		b.w(")")
	}
	return nil
}

func (b *builder) idClause(c *search.Clause, ra string) error {
	ids := make([]string, 0, len(c.Values))
	for _, v := range c.Values {
		id := v.Code
		if id == "" {
			id = v.Raw
		}
		ids = append(ids, id)
	}
	switch c.Modifier {
	case "", "exact":
		b.w(ra, ".id IN ", b.list(ids))
	case "not":
		b.w(ra, ".id NOT IN ", b.list(ids))
	case "missing":
		// Every resource has an id: :missing=true matches nothing.
		any := false
		for _, v := range c.Values {
			any = any || !v.Missing
		}
		if any {
			b.w("1 = 1")
		} else {
			b.w("1 = 0")
		}
	default:
		return fmt.Errorf("%w: modifier :%s on _id", store.ErrUnsupported, c.Modifier)
	}
	return nil
}

func (b *builder) lastUpdatedClause(c *search.Clause, ra string, now time.Time) error {
	switch c.Modifier {
	case "":
	case "missing":
		any := false
		for _, v := range c.Values {
			any = any || !v.Missing
		}
		if any {
			b.w("1 = 1")
		} else {
			b.w("1 = 0")
		}
		return nil
	default:
		return fmt.Errorf("%w: modifier :%s on _lastUpdated", store.ErrUnsupported, c.Modifier)
	}
	b.w("(")
	for i := range c.Values {
		if i > 0 {
			b.w(" OR ")
		}
		v := &c.Values[i]
		lo, hi := nanoBound(v.Lo, false), nanoBound(v.Hi, true)
		// The record column is an instant: a range of one point.
		if err := b.rangeCond(ra+".last_updated", ra+".last_updated", v.Prefix, lo, hi, apNanos(v, now)); err != nil {
			return err
		}
	}
	b.w(")")
	return nil
}

// nanoBound encodes a time as Unix nanoseconds, clamped to what int64 holds.
func nanoBound(t time.Time, upper bool) int64 {
	switch {
	case t.IsZero() && upper:
		return math.MaxInt64
	case t.IsZero():
		return math.MinInt64
	case t.Year() < 1678:
		return math.MinInt64
	case t.Year() > 2261:
		return math.MaxInt64
	}
	return t.UnixNano()
}

// apTolerance is the "approximately" margin: 10% of the distance between the
// value and now, as the FHIR search page recommends.
func apTolerance(v *search.Value, now time.Time) time.Duration {
	mid := v.Lo
	if mid.IsZero() {
		mid = v.Hi
	}
	d := now.Sub(mid)
	if d < 0 {
		d = -d
	}
	return d / 10
}

func apNanos(v *search.Value, now time.Time) [2]int64 {
	tol := apTolerance(v, now)
	return [2]int64{nanoBound(v.Lo.Add(-tol), false), nanoBound(v.Hi.Add(tol), true)}
}

// rangeCond writes the FHIR R4 prefix semantics for a target range
// [loCol, hiCol] against the search range [lo, hi] (both inclusive).
func (b *builder) rangeCond(loCol, hiCol string, p search.Prefix, lo, hi int64, ap [2]int64) error {
	switch p {
	case "", search.PrefixEq:
		// The search range fully contains the target range.
		b.w(loCol, " >= ", b.arg(lo), " AND ", hiCol, " <= ", b.arg(hi))
	case search.PrefixNe:
		b.w("NOT (", loCol, " >= ", b.arg(lo), " AND ", hiCol, " <= ", b.arg(hi), ")")
	case search.PrefixGt:
		// The range above the search value intersects the target range.
		b.w(hiCol, " > ", b.arg(hi))
	case search.PrefixLt:
		b.w(loCol, " < ", b.arg(lo))
	case search.PrefixGe:
		// gt, or the search range fully contains the target range.
		b.w("(", hiCol, " > ", b.arg(hi), " OR (", loCol, " >= ", b.arg(lo), " AND ", hiCol, " <= ", b.arg(hi), "))")
	case search.PrefixLe:
		b.w("(", loCol, " < ", b.arg(lo), " OR (", loCol, " >= ", b.arg(lo), " AND ", hiCol, " <= ", b.arg(hi), "))")
	case search.PrefixSa:
		// The target range starts after the search range ends.
		b.w(loCol, " > ", b.arg(hi))
	case search.PrefixEb:
		b.w(hiCol, " < ", b.arg(lo))
	case search.PrefixAp:
		// The ranges overlap once the search range is widened.
		b.w(loCol, " <= ", b.arg(ap[1]), " AND ", hiCol, " >= ", b.arg(ap[0]))
	default:
		return fmt.Errorf("%w: unknown prefix", store.ErrInvalid)
	}
	return nil
}

func (b *builder) dateValue(v *search.Value, now time.Time) error {
	lo, hi := LoMicros(v.Lo), HiMicros(v.Hi)
	tol := apTolerance(v, now)
	ap := [2]int64{LoMicros(v.Lo.Add(-tol)), HiMicros(v.Hi.Add(tol))}
	if v.Lo.IsZero() {
		ap[0] = MinMicros
	}
	if v.Hi.IsZero() {
		ap[1] = MaxMicros
	}
	return b.rangeCond("x.lo", "x.hi", v.Prefix, lo, hi, ap)
}

// stringValue: default is a prefix match on the normalised form, :exact an
// equality on the original text, :contains a substring of the normalised form.
func (b *builder) stringValue(c *search.Clause, v *search.Value) error {
	switch c.Modifier {
	case "":
		b.prefix("x.norm", v.Str)
	case "exact":
		b.w("x.exact = ", b.arg(exactText(v)))
	case "contains":
		b.w(b.d.Contains("x.norm", b.arg(v.Str)))
	default:
		return fmt.Errorf("%w: modifier :%s on string parameter %s", store.ErrUnsupported, c.Modifier, c.Param.Code)
	}
	return nil
}

// exactText is the text an :exact value compares with: Raw as given.
func exactText(v *search.Value) string {
	if v.Raw != "" {
		return v.Raw
	}
	return v.Str
}

// prefix writes "col starts with p" as an index-friendly range.
func (b *builder) prefix(col, p string) {
	if p == "" {
		b.w(col, " IS NOT NULL")
		return
	}
	b.w(col, " >= ", b.arg(p), " AND ", col, " < ", b.arg(prefixUpper(p)))
}

// tokenMatch writes the system|code rules shared by tokens and
// reference :identifier.
func (b *builder) tokenMatch(sysCol, codeCol string, v *search.Value) {
	switch {
	case v.HasSystem && v.Code == "":
		b.w(sysCol, " = ", b.arg(v.System))
	case v.HasSystem:
		b.w(sysCol, " = ", b.arg(v.System), " AND ", codeCol, " = ", b.arg(v.Code))
	default:
		b.w(codeCol, " = ", b.arg(v.Code))
	}
}

func (b *builder) tokenValue(c *search.Clause, v *search.Value) error {
	switch c.Modifier {
	case "", "not":
		b.tokenMatch("x.system", "x.code", v)
	case "of-type":
		b.w("x.code = ", b.arg(v.Ident), " AND x.type_system = ", b.arg(v.System), " AND x.type_code = ", b.arg(v.Code))
	case "text":
		s := v.Str
		if s == "" {
			s = strings.ToLower(v.Raw)
		}
		b.prefix("x.text", s)
	default:
		return fmt.Errorf("%w: modifier :%s on token parameter %s", store.ErrUnsupported, c.Modifier, c.Param.Code)
	}
	return nil
}

// numberValue: eq/ne use the precision range of the search value (half-open
// [lo, hi) as the spec's "100 means [99.5, 100.5)"); gt/lt/ge/le compare the
// stored value with the given value; sa/eb compare the stored precision range
// with the search range; ap widens the search range by 10% of the value.
func (b *builder) numberValue(c *search.Clause, v *search.Value, quantity bool) error {
	if c.Modifier != "" {
		return fmt.Errorf("%w: modifier :%s on %s parameter %s", store.ErrUnsupported, c.Modifier, c.Param.Type, c.Param.Code)
	}
	if math.IsNaN(v.Num) || math.IsInf(v.Num, 0) || math.IsNaN(v.NumLo) || math.IsNaN(v.NumHi) {
		return fmt.Errorf("%w: number value of %s is not finite", store.ErrInvalid, c.Param.Code)
	}
	lo, hi := v.NumLo, v.NumHi
	if lo == 0 && hi == 0 {
		lo, hi = v.Num, v.Num
	}
	eq := func() {
		if lo < hi {
			b.w("x.num >= ", b.arg(lo), " AND x.num < ", b.arg(hi))
		} else {
			b.w("x.num = ", b.arg(v.Num))
		}
	}
	switch v.Prefix {
	case "", search.PrefixEq:
		eq()
	case search.PrefixNe:
		b.w("NOT (")
		eq()
		b.w(")")
	case search.PrefixGt:
		b.w("x.num > ", b.arg(v.Num))
	case search.PrefixLt:
		b.w("x.num < ", b.arg(v.Num))
	case search.PrefixGe:
		b.w("x.num >= ", b.arg(v.Num))
	case search.PrefixLe:
		b.w("x.num <= ", b.arg(v.Num))
	case search.PrefixSa:
		b.w("x.lo >= ", b.arg(hi), " AND x.num > ", b.arg(v.Num))
	case search.PrefixEb:
		b.w("x.hi <= ", b.arg(lo), " AND x.num < ", b.arg(v.Num))
	case search.PrefixAp:
		tol := math.Abs(v.Num) / 10
		b.w("x.num >= ", b.arg(math.Min(lo, v.Num-tol)), " AND x.num <= ", b.arg(math.Max(hi, v.Num+tol)))
	default:
		return fmt.Errorf("%w: unknown prefix", store.ErrInvalid)
	}
	if quantity {
		// "n||code" ignores the system; "n|system|code" needs both.
		if v.System != "" {
			b.w(" AND x.system = ", b.arg(v.System))
		}
		if v.Code != "" {
			b.w(" AND x.code = ", b.arg(v.Code))
		}
	}
	return nil
}

func (b *builder) referenceValue(c *search.Clause, v *search.Value) error {
	switch c.Modifier {
	case "identifier":
		if v.Code != "" {
			// Lets the engine use the partial identifier index.
			b.w("x.code <> '' AND ")
		}
		b.tokenMatch("x.system", "x.code", v)
		return nil
	case "":
		switch {
		case v.URL != "":
			b.w("x.url <> '' AND x.url = ", b.arg(v.URL))
		case v.RefType != "":
			b.w("x.ref_type = ", b.arg(v.RefType), " AND x.ref_id = ", b.arg(v.RefID))
		default:
			b.w("x.ref_id = ", b.arg(v.RefID))
		}
		if v.RefVersion != "" && v.URL == "" {
			b.w(" AND x.ref_version = ", b.arg(v.RefVersion))
		}
		return nil
	}
	if !isTypeName(c.Modifier) {
		return fmt.Errorf("%w: modifier :%s on reference parameter %s", store.ErrUnsupported, c.Modifier, c.Param.Code)
	}
	id := v.RefID
	if v.RefType != "" && v.RefType != c.Modifier {
		b.w("1 = 0")
		return nil
	}
	b.w("x.ref_type = ", b.arg(c.Modifier), " AND x.ref_id = ", b.arg(id))
	if v.RefVersion != "" {
		b.w(" AND x.ref_version = ", b.arg(v.RefVersion))
	}
	return nil
}

// isTypeName reports whether m looks like a resource type (:Patient).
func isTypeName(m string) bool {
	if m == "" || m[0] < 'A' || m[0] > 'Z' {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (b *builder) uriValue(c *search.Clause, v *search.Value) error {
	u := v.URL
	if u == "" {
		u = v.Raw
	}
	switch c.Modifier {
	case "":
		b.w("x.url = ", b.arg(u))
	case "below":
		b.prefix("x.url", u)
	case "above":
		// Entries whose URL is the value or one of its path ancestors.
		b.w("x.url IN ", b.list(uriAncestors(u)))
	default:
		return fmt.Errorf("%w: modifier :%s on uri parameter %s", store.ErrUnsupported, c.Modifier, c.Param.Code)
	}
	return nil
}

// uriAncestors returns u and every prefix of u that ends just before a '/'
// (and with it), past the scheme's "//".
func uriAncestors(u string) []string {
	out := []string{u}
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + 3
	}
	for i := len(u) - 1; i > start; i-- {
		if u[i] == '/' {
			out = append(out, u[:i], u[:i+1])
		}
	}
	return out
}
