package scopes

import (
	"net/url"
	"strings"

	"phix/fhir"
	"phix/fhir/search"
)

// parseRestriction accepts only what Matches can evaluate exactly: token
// and string parameters of the scope's resource type, without modifiers
// other than :exact on strings, without prefixes or result parameters.
// Anything else is refused rather than ignored, since ignoring a
// restriction would widen the grant.
func parseRestriction(i int, typ, query string) (*Restriction, error) {
	if typ == "*" {
		return nil, errf(i, CodeRestriction, "a query restriction needs a concrete resource type")
	}
	vals, err := url.ParseQuery(query)
	if err != nil || len(vals) == 0 {
		return nil, errf(i, CodeRestriction, "the query restriction is not a valid query string")
	}
	for k, vs := range vals {
		if strings.HasPrefix(k, "_") {
			return nil, errf(i, CodeRestriction, "result and special parameters are not allowed in a restriction")
		}
		for _, v := range vs {
			if v == "" {
				return nil, errf(i, CodeRestriction, "a restriction parameter has an empty value")
			}
		}
	}
	q, _, err := search.Parse(typ, vals, search.ParseOptions{Strict: true, MaxClauses: 16, MaxValues: 32})
	if err != nil {
		return nil, errf(i, CodeRestriction, "the query restriction does not parse as a search")
	}
	if len(q.Include) > 0 || len(q.RevInclude) > 0 || len(q.Sort) > 0 {
		return nil, errf(i, CodeRestriction, "result parameters are not allowed in a restriction")
	}
	for _, c := range q.Clauses {
		if c.Param == nil {
			return nil, errf(i, CodeRestriction, "unsupported restriction parameter")
		}
		switch c.Param.Type {
		case search.TypeToken:
			if c.Modifier != "" {
				return nil, errf(i, CodeRestriction, "token restrictions take no modifier")
			}
		case search.TypeString:
			if c.Modifier != "" && c.Modifier != "exact" {
				return nil, errf(i, CodeRestriction, "string restrictions take only :exact")
			}
		default:
			return nil, errf(i, CodeRestriction, "only token and string parameters may restrict a scope")
		}
		for _, v := range c.Values {
			if v.Prefix != "" && v.Prefix != search.PrefixEq {
				return nil, errf(i, CodeRestriction, "prefixes are not allowed in a restriction")
			}
		}
	}
	return &Restriction{Values: vals, Clauses: q.Clauses}, nil
}

// Matches reports whether r satisfies every clause of the restriction.
func (rs *Restriction) Matches(r *fhir.Resource) bool {
	if rs == nil {
		return true
	}
	for _, c := range rs.Clauses {
		if !clauseMatches(c, search.ExtractParam(r, c.Param)) {
			return false
		}
	}
	return true
}

func clauseMatches(c search.Clause, entries []search.Entry) bool {
	for _, e := range entries {
		for _, v := range c.Values {
			if valueMatches(c, v, e) {
				return true
			}
		}
	}
	return false
}

func valueMatches(c search.Clause, v search.Value, e search.Entry) bool {
	switch c.Param.Type {
	case search.TypeToken:
		if v.HasSystem && e.System != v.System {
			return false
		}
		// "system|" matches every code of the system.
		return v.Code == "" && v.HasSystem || e.Code == v.Code
	case search.TypeString:
		if c.Modifier == "exact" {
			return e.Exact == v.Raw
		}
		return strings.HasPrefix(e.Str, v.Str)
	}
	return false
}

// Allows reports whether some scope of the set grants interaction on
// resourceType in ctx. A scope with a query restriction counts: the caller
// must then apply Filter (searches) or Matches (reads, writes) as well.
func (s *Set) Allows(in Interaction, resourceType string, ctx Context) bool {
	p, ok := permOf(in)
	if !ok || s == nil {
		return false
	}
	for _, sc := range s.Resources {
		if sc.Context == ctx && sc.Perm&p != 0 && (sc.ResourceType == "*" || sc.ResourceType == resourceType) {
			return true
		}
	}
	return false
}

// Filter is what a search must be restricted to under a scope set.
type Filter struct {
	// Allowed is false when no scope grants the search at all.
	Allowed bool
	// Alternatives are ORed: the query must be ANDed with at least one of
	// them. Empty when Allowed and unrestricted.
	Alternatives []*Restriction
}

// Filter returns the restrictions a search of resourceType in ctx must be
// ANDed with. An unrestricted scope granting s wins over restricted ones.
func (s *Set) Filter(resourceType string, ctx Context) Filter {
	var f Filter
	if s == nil {
		return f
	}
	for _, sc := range s.Resources {
		if sc.Context != ctx || sc.Perm&PermS == 0 || (sc.ResourceType != "*" && sc.ResourceType != resourceType) {
			continue
		}
		if sc.Restriction == nil {
			return Filter{Allowed: true}
		}
		f.Allowed = true
		f.Alternatives = append(f.Alternatives, sc.Restriction)
	}
	return f
}

// Matches reports whether the set grants interaction on the concrete
// resource r in ctx, restrictions included. Search results and reads are
// checked with it one resource at a time.
func (s *Set) Matches(in Interaction, ctx Context, r *fhir.Resource) bool {
	p, ok := permOf(in)
	if !ok || s == nil || r == nil {
		return false
	}
	for _, sc := range s.Resources {
		if sc.Context != ctx || sc.Perm&p == 0 || (sc.ResourceType != "*" && sc.ResourceType != r.Type) {
			continue
		}
		if sc.Restriction.Matches(r) {
			return true
		}
	}
	return false
}

// Covers reports whether every scope of req is within s: each requested
// permission letter must be granted by a scope of the same context, for the
// same type (or a granted "*"), with a restriction no wider than the
// requested one. It is the check that refuses escalation at token exchange.
func (s *Set) Covers(req *Set) bool {
	if req == nil {
		return true
	}
	if s == nil {
		return len(req.Resources) == 0 && len(req.Other) == 0
	}
	for k := range req.Other {
		if !s.Other[k] {
			return false
		}
	}
	for _, r := range req.Resources {
		for bit := Perm(1); bit <= PermS; bit <<= 1 {
			if r.Perm&bit == 0 {
				continue
			}
			if !s.coversOne(r, bit) {
				return false
			}
		}
	}
	return true
}

func (s *Set) coversOne(r Scope, bit Perm) bool {
	for _, g := range s.Resources {
		if g.Context != r.Context || g.Perm&bit == 0 {
			continue
		}
		if g.ResourceType != "*" && g.ResourceType != r.ResourceType {
			continue
		}
		if restrictionWithin(r.Restriction, g.Restriction) {
			return true
		}
	}
	return false
}

// restrictionWithin reports whether req is at least as narrow as granted:
// granted unrestricted, or every granted parameter present in req with
// values that are a subset of the granted ones.
func restrictionWithin(req, granted *Restriction) bool {
	if granted == nil {
		return true
	}
	if req == nil {
		return false
	}
	for k, gvs := range granted.Values {
		rvs, ok := req.Values[k]
		if !ok {
			return false
		}
		// Each requested occurrence of k ANDs; one of them within the
		// granted ORed values is enough.
		if !anyWithin(rvs, gvs) {
			return false
		}
	}
	return true
}

func anyWithin(req, granted []string) bool {
	allowed := map[string]bool{}
	for _, g := range granted {
		for _, v := range strings.Split(g, ",") {
			allowed[v] = true
		}
	}
	for _, r := range req {
		ok := true
		for _, v := range strings.Split(r, ",") {
			if !allowed[v] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
