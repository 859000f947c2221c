package deid

import "strings"

// pathHead returns the first element name of a FHIRPath expression that is
// only a chain of member names ("text.div"), or "" for anything else
// (a type name first, functions, operators, literals, variables). Such an
// expression can select nothing from a resource whose root has no key
// starting with that name (a choice such as value[x] or a "_" sibling
// included), so the engine skips evaluating it there.
func pathHead(expr string) string {
	head, _, _ := strings.Cut(expr, ".")
	for _, seg := range strings.Split(expr, ".") {
		if seg == "" {
			return ""
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0
			if !ok {
				return ""
			}
		}
	}
	if c := head[0]; c < 'a' || c > 'z' || head == "true" || head == "false" {
		return ""
	}
	return head
}

// mayHave reports whether obj has a key that a member chain starting with
// head could reach: head itself, a choice head+Type, or their "_" siblings.
func mayHave(obj map[string]any, head string) bool {
	for k := range obj {
		k = strings.TrimPrefix(k, "_")
		if strings.HasPrefix(k, head) {
			return true
		}
	}
	return false
}
