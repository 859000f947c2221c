package invariant

import "strings"

// rewrites adapt constraint texts to the engine where it deviates from how
// the R4 constraints are written, by exact substring replacement (a
// rewrite that no longer matches is caught by TestRewritesApply).
//
// dom-3 applies as() to whole collections (%resource.descendants().as(uri))
// to select the items of a type, as the reference implementations allow;
// phix's engine keeps the N1 singleton rule for the as() function, so
// dom-3 raised fhirpath-singleton-expected on every resource with
// contained resources. ofType() is the filtering the constraint means.
var rewrites = []struct{ key, old, new string }{
	{"dom-3", "%resource.descendants().as(canonical)", "%resource.descendants().ofType(canonical)"},
	{"dom-3", "%resource.descendants().as(uri)", "%resource.descendants().ofType(uri)"},
	{"dom-3", "%resource.descendants().as(url)", "%resource.descendants().ofType(url)"},
}

// rewrite returns the expression to compile for a constraint.
func rewrite(key, expr string) string {
	for _, r := range rewrites {
		if r.key == key {
			expr = strings.ReplaceAll(expr, r.old, r.new)
		}
	}
	return expr
}
