package specgen

import (
	"fmt"
	"sort"
	"strings"
)

// constraintSet collects distinct constraints (ele-1 sits on some 6,800
// elements; it is stored once with its paths).
type constraintSet struct {
	byID map[constraint]*outConstraint
}

func newConstraintSet() *constraintSet {
	return &constraintSet{byID: map[constraint]*outConstraint{}}
}

// add records the constraints of the element at definition path.
func (cs *constraintSet) add(path string, list []constraint) error {
	for _, c := range list {
		if c.Key == "" || c.Expression == "" {
			// R4 has none; a constraint without an expression cannot be
			// evaluated and must not silently pass as checked.
			return fmt.Errorf("%s: constraint %q without key or expression", path, c.Key)
		}
		if c.Severity != "error" && c.Severity != "warning" {
			return fmt.Errorf("%s: constraint %s: severity %q", path, c.Key, c.Severity)
		}
		c.Source = strings.TrimPrefix(c.Source, sdPrefix)
		oc := cs.byID[c]
		if oc == nil {
			oc = &outConstraint{Key: c.Key, Severity: c.Severity, Human: c.Human, Expression: c.Expression, Source: c.Source}
			cs.byID[c] = oc
		}
		if n := len(oc.Paths); n == 0 || oc.Paths[n-1] != path {
			oc.Paths = append(oc.Paths, path)
		}
	}
	return nil
}

// list returns the constraints sorted by key, then expression and source,
// each with sorted, distinct paths: deterministic output.
func (cs *constraintSet) list() []outConstraint {
	out := make([]outConstraint, 0, len(cs.byID))
	for _, oc := range cs.byID {
		sort.Strings(oc.Paths)
		oc.Paths = compactStrings(oc.Paths)
		out = append(out, *oc)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		if a.Expression != b.Expression {
			return a.Expression < b.Expression
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Severity != b.Severity {
			return a.Severity < b.Severity
		}
		return a.Human < b.Human
	})
	return out
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
