package invariant

import "strings"

// nodeView is one element instance: a JSON value and, for primitives, its
// "_name" sibling (id and extensions).
type nodeView struct {
	v    any            // map[string]any for complex nodes; string, json.Number, bool or nil for primitives
	ext  map[string]any // primitive sibling, nil when absent
	prim bool
}

// ele1 is "hasValue() or (children().count() > id.count())": a primitive
// has a value, or some child besides its id; a complex element has some
// child element besides id.
func ele1(n nodeView) bool {
	if n.prim {
		if n.v != nil {
			return true
		}
		for k, v := range n.ext {
			if k != "id" && nonEmpty(v) {
				return true
			}
		}
		return false
	}
	m, ok := n.v.(map[string]any)
	if !ok {
		return true // not an object: a structural error, not this invariant
	}
	for k, v := range m {
		switch k {
		case "id", "_id", "resourceType":
			continue
		}
		if nonEmpty(v) {
			return true
		}
	}
	return false
}

// ext1 is "extension.exists() != value.exists()" on an Extension: it has
// nested extensions or a value[x], not both and not neither.
func ext1(n nodeView) bool {
	m, ok := n.v.(map[string]any)
	if !ok {
		return true
	}
	hasExt, hasValue := false, false
	for k, v := range m {
		switch {
		case k == "extension":
			hasExt = nonEmpty(v)
		case strings.HasPrefix(k, "value") || strings.HasPrefix(k, "_value"):
			if nonEmpty(v) {
				hasValue = true
			}
		}
	}
	return hasExt != hasValue
}

func nonEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case []any:
		for _, it := range x {
			if it != nil {
				return true
			}
		}
		return false
	}
	return true
}
