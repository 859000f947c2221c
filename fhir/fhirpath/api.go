// Package fhirpath is phix's FHIRPath engine: FHIRPath N1 (normative) as
// used by FHIR R4, with the FHIR additions (extension(), resolve(),
// memberOf(), ...). Expressions compile once into an AST and evaluate over
// FHIR JSON trees (map[string]any with json.Number numbers) with type
// information from package fhir. See docs/fhirpath.md.
package fhirpath

import (
	"context"
	"sync"
)

// Expression is a compiled FHIRPath expression. It is immutable and safe
// for concurrent use.
type Expression struct {
	src  string
	root node
}

// String returns the source text.
func (e *Expression) String() string { return e.src }

// Compile parses and checks an expression. Errors are *Error with Kind
// KindSyntax or KindSemantic and the position of the problem.
func Compile(expr string) (*Expression, error) {
	n, err := parse(expr)
	if err != nil {
		return nil, err
	}
	return &Expression{src: expr, root: n}, nil
}

// MustCompile is Compile for expressions known at build time; it panics on
// error.
func MustCompile(expr string) *Expression {
	e, err := Compile(expr)
	if err != nil {
		panic("fhirpath: " + err.Error())
	}
	return e
}

type cacheEntry struct {
	expr *Expression
	err  error
}

var (
	cacheMu sync.RWMutex
	cache   = map[string]cacheEntry{}
)

// MaxCached bounds the compile cache; past it the cache is reset.
const MaxCached = 4096

// Cached returns the compiled expression, compiling it on first use. Safe
// for concurrent use; compile errors are cached too.
func Cached(expr string) (*Expression, error) {
	cacheMu.RLock()
	e, ok := cache[expr]
	cacheMu.RUnlock()
	if ok {
		return e.expr, e.err
	}
	x, err := Compile(expr)
	cacheMu.Lock()
	if len(cache) >= MaxCached {
		cache = map[string]cacheEntry{}
	}
	cache[expr] = cacheEntry{x, err}
	cacheMu.Unlock()
	return x, err
}

// Evaluate runs the expression against the input collection. ec may be nil.
func (e *Expression) Evaluate(ec *EvalContext, input Collection) (Collection, error) {
	if ec == nil {
		ec = &EvalContext{}
	}
	run := &struct {
		st state
		sc scope
	}{}
	st, sc := &run.st, &run.sc
	*st = state{
		ec:       ec,
		ctx:      ec.Ctx,
		src:      e.src,
		maxSteps: orDefault(ec.Limits.MaxSteps, DefaultMaxSteps),
		maxColl:  orDefault(ec.Limits.MaxCollection, DefaultMaxCollection),
		maxDepth: orDefault(ec.Limits.MaxDepth, DefaultMaxDepth),
		input:    input,
	}
	sc.this = input
	out, err := st.eval(e.root, sc)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EvaluateResource evaluates against a resource JSON object, which is also
// %resource and %context unless ec sets them.
func (e *Expression) EvaluateResource(ec *EvalContext, resource map[string]any) (Collection, error) {
	return e.Evaluate(ec, Collection{NewResourceItem(resource)})
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// EvaluateBool evaluates and applies the singleton Boolean rule: empty is
// (false, false); a single Boolean is its value; a single other item is
// true; more than one item is an error.
func (e *Expression) EvaluateBool(ec *EvalContext, input Collection) (value, known bool, err error) {
	out, err := e.Evaluate(ec, input)
	if err != nil {
		return false, false, err
	}
	switch len(out) {
	case 0:
		return false, false, nil
	case 1:
		if v, ok := out[0].sys(); ok {
			if b, isB := v.(bool); isB {
				return b, true, nil
			}
		}
		return true, true, nil
	}
	return false, false, newErr(KindExecution, CodeSingleton, Position{Line: 1, Column: 1}, "expected a single Boolean but found %d items", len(out))
}

// EvaluateStrings evaluates and converts every item with toString()
// semantics; complex items are an error.
func (e *Expression) EvaluateStrings(ec *EvalContext, input Collection) ([]string, error) {
	out, err := e.Evaluate(ec, input)
	if err != nil {
		return nil, err
	}
	res := make([]string, 0, len(out))
	for _, it := range out {
		v, ok := it.sys()
		if !ok {
			if it.v == nil {
				continue // primitive with only extensions
			}
			return nil, newErr(KindExecution, CodeType, Position{Line: 1, Column: 1}, "item of type %s has no string form", it.Type())
		}
		s, ok := sysToString(v)
		if !ok {
			return nil, newErr(KindExecution, CodeType, Position{Line: 1, Column: 1}, "item of type %s has no string form", it.Type())
		}
		res = append(res, s)
	}
	return res, nil
}

// WithContext returns a copy of ec using ctx for cancellation.
func (ec EvalContext) WithContext(ctx context.Context) *EvalContext {
	ec.Ctx = ctx
	return &ec
}
