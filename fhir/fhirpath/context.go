package fhirpath

import (
	"context"
	"time"
)

// Limits bound an evaluation so a pathological expression or input cannot
// hang or exhaust memory. Zero fields take the defaults.
type Limits struct {
	// MaxSteps is the evaluation budget: one step per node evaluated, item
	// visited and comparison made. Default 1,000,000.
	MaxSteps int
	// MaxCollection is the largest collection any step may produce.
	// Default 100,000.
	MaxCollection int
	// MaxDepth bounds repeat() and descendants() nesting and the nesting of
	// function calls. Default 64.
	MaxDepth int
}

// Default limits.
const (
	DefaultMaxSteps      = 1_000_000
	DefaultMaxCollection = 100_000
	DefaultMaxDepth      = 64
)

// Resolver resolves references for resolve(). Resolve returns the target
// resource as a JSON object, or nil when it cannot be found (resolve() then
// yields nothing for it). The reference is as written: relative
// ("Patient/123"), absolute, or a canonical URL.
type Resolver interface {
	Resolve(ctx context.Context, reference string) (map[string]any, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, reference string) (map[string]any, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, reference string) (map[string]any, error) {
	return f(ctx, reference)
}

// Terminology answers memberOf(). system may be "" for a bare code.
type Terminology interface {
	MemberOf(ctx context.Context, system, code, valueSet string) (bool, error)
}

// EvalContext carries everything an evaluation needs besides the input.
// The zero value (or nil) is usable.
type EvalContext struct {
	// Ctx cancels a long evaluation; nil means context.Background().
	Ctx context.Context
	// Resource is %resource (and %rootResource when RootResource is empty).
	// When nil, the input collection is used.
	Resource Collection
	// RootResource is %rootResource: the outermost resource, e.g. the Bundle.
	RootResource Collection
	// Context is %context; when nil, the input collection.
	Context Collection
	// Vars are user-supplied external constants (%name).
	Vars map[string]Collection
	// Resolver serves resolve() beyond the contained resources and the
	// entries of a %rootResource Bundle, which are always searched first.
	Resolver Resolver
	// Terminology serves memberOf(); without it memberOf() yields empty.
	Terminology Terminology
	// ConformsTo decides conformsTo() for profiles other than the base
	// resource definitions; without it those are an execution error.
	ConformsTo func(item Item, profileURL string) (bool, error)
	// Now is the clock for now(), today() and timeOfDay(); nil is time.Now.
	// It is read once per evaluation, as the specification requires.
	Now func() time.Time
	// Trace receives trace() output. Nil discards it: collections hold PHI,
	// so nothing is ever logged by default.
	Trace func(name string, c Collection)
	// Strict reports elements that the FHIR model does not define (and
	// concrete choice names such as valueQuantity) as semantic errors instead
	// of evaluating them against the JSON.
	Strict bool
	// Limits bound the evaluation.
	Limits Limits
}
