// Package scopes parses SMART App Launch scopes (v1 and v2, with
// query-restricted v2 scopes) and answers what a granted scope set allows:
// which interactions on which resource types in which context, which search
// restrictions a query must be ANDed with, whether a concrete resource
// satisfies them, and whether one set covers another (escalation checks).
//
// Errors never quote the scope text: they name the token's position and what
// is structurally wrong with it.
package scopes

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"phix/fhir/search"
)

// Context is the launch context of a resource scope.
type Context string

// The three SMART contexts.
const (
	Patient Context = "patient"
	User    Context = "user"
	System  Context = "system"
)

// Interaction is a FHIR REST interaction class checked against permissions.
type Interaction string

// The interactions the SMART v2 letters c, r, u, d, s stand for.
const (
	Create Interaction = "create"
	Read   Interaction = "read"
	Update Interaction = "update"
	Delete Interaction = "delete"
	Search Interaction = "search"
)

// Perm is a set of SMART v2 permission letters.
type Perm uint8

// The permission bits, in the canonical "cruds" order.
const (
	PermC Perm = 1 << iota
	PermR
	PermU
	PermD
	PermS
	PermAll = PermC | PermR | PermU | PermD | PermS
)

const letters = "cruds"

// String writes p in canonical v2 letter order.
func (p Perm) String() string {
	var b strings.Builder
	for i := 0; i < len(letters); i++ {
		if p&(1<<i) != 0 {
			b.WriteByte(letters[i])
		}
	}
	return b.String()
}

func permOf(i Interaction) (Perm, bool) {
	switch i {
	case Create:
		return PermC, true
	case Read:
		return PermR, true
	case Update:
		return PermU, true
	case Delete:
		return PermD, true
	case Search:
		return PermS, true
	}
	return 0, false
}

// Error codes of parse errors. Stable: callers may switch on them.
const (
	CodeEmpty          = "empty"
	CodeMalformed      = "malformed"
	CodeUnknownScope   = "unknown-scope"
	CodeUnknownContext = "unknown-context"
	CodeUnknownType    = "unknown-resource-type"
	CodeBadPermission  = "bad-permission"
	CodeWildcard       = "misplaced-wildcard"
	CodeRestriction    = "unsupported-restriction"
	CodeTooMany        = "too-many-scopes"
)

// MaxScopes bounds the tokens of one scope string.
const MaxScopes = 256

// MaxScopeLength bounds one scope token in bytes.
const MaxScopeLength = 2048

// Error is a scope parse error. Index is the 0-based position of the
// offending token; the token itself is never quoted.
type Error struct {
	Index int
	Code  string
	Msg   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("scopes: scope #%d: %s: %s", e.Index, e.Code, e.Msg)
}

func errf(i int, code, format string, args ...any) *Error {
	return &Error{Index: i, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Restriction is the query part of a v2 query-restricted scope: parameters
// ANDed, the comma-separated values of one parameter ORed.
type Restriction struct {
	// Values is the restriction as given, for callers that build queries.
	Values url.Values
	// Clauses is the same restriction parsed against the search registry.
	Clauses []search.Clause
}

// Scope is one resource scope.
type Scope struct {
	Context      Context
	ResourceType string // a FHIR resource type, or "*"
	Perm         Perm
	// V1 records that the scope was written with v1 permissions (read,
	// write, *); Perm holds their v2 equivalent.
	V1 bool
	// Restriction is nil for an unrestricted scope.
	Restriction *Restriction
}

// String writes the scope in canonical v2 form.
func (s Scope) String() string {
	out := string(s.Context) + "/" + s.ResourceType + "." + s.Perm.String()
	if s.Restriction != nil {
		out += "?" + s.Restriction.Values.Encode()
	}
	return out
}

// Set is a parsed scope string.
type Set struct {
	Resources []Scope
	// Other holds the non-resource scopes present: openid, fhirUser, launch,
	// launch/patient, launch/encounter, offline_access, online_access.
	Other map[string]bool
}

var otherScopes = map[string]bool{
	"openid": true, "fhirUser": true, "profile": true, "launch": true,
	"launch/patient": true, "launch/encounter": true,
	"offline_access": true, "online_access": true,
}

// Has reports whether a non-resource scope (e.g. "openid") is present.
func (s *Set) Has(name string) bool { return s != nil && s.Other[name] }

// String writes the set in canonical form, sorted.
func (s *Set) String() string {
	var parts []string
	for k := range s.Other {
		parts = append(parts, k)
	}
	for _, r := range s.Resources {
		parts = append(parts, r.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// Parse reads a space-separated scope string. Every token must be a known
// scope: unknown or malformed tokens are errors rather than silently
// dropped, so that a typo cannot widen or narrow access unnoticed.
func Parse(scope string) (*Set, error) {
	toks := strings.Fields(scope)
	if len(toks) == 0 {
		return nil, errf(0, CodeEmpty, "no scopes given")
	}
	if len(toks) > MaxScopes {
		return nil, errf(MaxScopes, CodeTooMany, "more than %d scopes", MaxScopes)
	}
	set := &Set{Other: map[string]bool{}}
	for i, t := range toks {
		if len(t) > MaxScopeLength {
			return nil, errf(i, CodeMalformed, "longer than %d bytes", MaxScopeLength)
		}
		if otherScopes[t] {
			set.Other[t] = true
			continue
		}
		sc, err := parseResource(i, t)
		if err != nil {
			return nil, err
		}
		set.Resources = append(set.Resources, sc)
	}
	return set, nil
}

func parseResource(i int, t string) (Scope, error) {
	var sc Scope
	slash := strings.IndexByte(t, '/')
	if slash < 0 {
		return sc, errf(i, CodeUnknownScope, "not a known scope and not context/Type.permissions")
	}
	switch Context(t[:slash]) {
	case Patient, User, System:
		sc.Context = Context(t[:slash])
	default:
		if t[:slash] == "*" {
			return sc, errf(i, CodeWildcard, "the context cannot be a wildcard")
		}
		return sc, errf(i, CodeUnknownContext, "context must be patient, user or system")
	}
	rest := t[slash+1:]
	var query string
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest, query = rest[:q], rest[q+1:]
	}
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return sc, errf(i, CodeMalformed, "missing '.' between resource type and permissions")
	}
	typ, perm := rest[:dot], rest[dot+1:]
	switch {
	case typ == "*":
	case strings.Contains(typ, "*"):
		return sc, errf(i, CodeWildcard, "a wildcard must stand for the whole resource type")
	case !search.IsResourceType(typ):
		return sc, errf(i, CodeUnknownType, "not an R4 resource type")
	}
	sc.ResourceType = typ
	p, v1, err := parsePerm(i, perm)
	if err != nil {
		return sc, err
	}
	sc.Perm, sc.V1 = p, v1
	if query != "" || strings.Contains(t, "?") {
		if v1 {
			return sc, errf(i, CodeRestriction, "query restrictions need v2 permissions")
		}
		r, err := parseRestriction(i, typ, query)
		if err != nil {
			return sc, err
		}
		sc.Restriction = r
	}
	return sc, nil
}

// parsePerm reads v1 (read, write, *) or v2 (cruds letters, in order, no
// repeats) permissions. v1 maps per the SMART v2 compatibility table:
// read = rs, write = cud, * = cruds.
func parsePerm(i int, p string) (Perm, bool, error) {
	switch p {
	case "read":
		return PermR | PermS, true, nil
	case "write":
		return PermC | PermU | PermD, true, nil
	case "*":
		return PermAll, true, nil
	case "":
		return 0, false, errf(i, CodeBadPermission, "no permissions given")
	}
	if strings.Contains(p, "*") {
		return 0, false, errf(i, CodeWildcard, "a permission wildcard must stand alone")
	}
	var out Perm
	last := -1
	for k := 0; k < len(p); k++ {
		idx := strings.IndexByte(letters, p[k])
		if idx < 0 {
			return 0, false, errf(i, CodeBadPermission, "permission letters must be among c, r, u, d, s")
		}
		if idx <= last {
			return 0, false, errf(i, CodeBadPermission, "permission letters must appear once each, in the order c, r, u, d, s")
		}
		last = idx
		out |= 1 << idx
	}
	return out, false, nil
}
