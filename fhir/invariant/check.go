// Package invariant evaluates the invariants (ElementDefinition.constraint)
// of the FHIR R4 StructureDefinitions on a resource: ele-1, ext-1, dom-2..6,
// the datatype rules (per-1, qty-3, ref-1, ...) and every resource's own
// (pat-1, obs-6, bdl-7, ...), with the FHIRPath engine. Run it after
// fhir.Validate: it assumes a structurally valid resource and skips what
// the structure does not define. See docs/invariants.md.
package invariant

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"phix/fhir"
	"phix/fhir/fhirpath"
)

// IssueInvariant is the OperationOutcome IssueType code of every issue
// Check reports.
const IssueInvariant = "invariant"

// DiagNotEvaluated is the diagnostics suffix of the warning reported when a
// constraint's expression cannot be evaluated (unsupported function, engine
// limit): "<key>: invariant not evaluated (<fhirpath error code>)".
const DiagNotEvaluated = "invariant not evaluated"

// maxDepth bounds recursion for objects built in code (Parse limits
// parsed input already).
const maxDepth = 200

// Options tune Check. The zero value is the default.
type Options struct {
	// Limits bound each expression evaluation (fhirpath defaults when zero).
	Limits fhirpath.Limits
	// Resolver serves resolve() beyond contained resources and Bundle
	// entries; nil resolves nothing else (no invariant needs more).
	Resolver fhirpath.Resolver
	// Now is the clock for now()/today(); nil is time.Now.
	Now func() time.Time
	// SkipWarnings leaves out constraints of severity warning (dom-6,
	// the "best practice" rules).
	SkipWarnings bool
}

// Check evaluates every constraint that applies to r and to every element
// in it: backbone elements, datatypes at any depth, primitives, contained
// resources and resources inside Bundle entries and Parameters, each with
// %resource the resource the element belongs to and %rootResource the
// resource that holds it (the container of a contained resource; a Bundle
// entry's resource is its own root). It returns nil when every constraint
// holds; otherwise issues sorted by location with Code "invariant", the
// constraint's severity, Diagnostics "<key>: <human>" and Key set. A
// constraint whose expression cannot be evaluated is reported once per
// call as a warning (DiagNotEvaluated), never as an error. When ctx ends
// the check stops with an error issue of code "timeout".
func Check(ctx context.Context, r *fhir.Resource, opts Options) []fhir.Issue {
	if r == nil || r.Object == nil {
		return []fhir.Issue{{Severity: fhir.SeverityFatal, Code: fhir.IssueStructure, Diagnostics: "no resource"}}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	w := &walker{ix: theIndex(), ctx: ctx, opts: opts}
	w.run(r.Object)
	return w.issues
}

// Validate is the one call for a write path: fhir.Validate, then Check when
// the structure is valid (invariants assume a valid structure). Issues are
// structural ones, or invariant ones sorted by location; hasErrors reports
// whether any is fatal or error (warnings alone do not reject a write).
func Validate(ctx context.Context, r *fhir.Resource, opts Options) (issues []fhir.Issue, hasErrors bool) {
	issues = fhir.Validate(r)
	if len(issues) == 0 {
		issues = Check(ctx, r, opts)
	}
	for _, i := range issues {
		if i.Severity == fhir.SeverityError || i.Severity == fhir.SeverityFatal {
			return issues, true
		}
	}
	return issues, false
}

type seg struct {
	name string
	idx  int // -1: not an array item
}

type walker struct {
	ix      *index
	ctx     context.Context
	opts    Options
	path    []seg
	issues  []fhir.Issue
	skipped map[*rule]bool // reported as not evaluated
	stopped bool
	visits  int
	ec      *fhirpath.EvalContext // for the resource being walked
	item    [1]fhirpath.Item      // input collection backing store
	// verify, in tests, receives both results of rules that have a native
	// form and a compiled expression.
	verify func(r *rule, loc string, native, engine bool, err error)
	dom3   []*dom3Frame // open frames of resources with contained resources
}

func (w *walker) run(obj map[string]any) {
	rt, _ := obj["resourceType"].(string)
	if !fhir.IsResourceType(rt) {
		return // fhir.Validate reports it
	}
	w.path = append(w.path, seg{rt, -1})
	w.resource(obj, obj, nil, false, 0)
	if len(w.issues) > 1 {
		slices.SortStableFunc(w.issues, func(a, b fhir.Issue) int {
			if c := strings.Compare(a.Expression[0], b.Expression[0]); c != 0 {
				return c
			}
			return strings.Compare(a.Diagnostics, b.Diagnostics)
		})
	}
}

// resource checks a resource object: its root constraints (dom-*, bdl-*,
// pat-...), then its elements. elemRules are the rules of the element
// holding it (ele-1 on Bundle.entry.resource), nil at the top.
func (w *walker) resource(obj, root map[string]any, elemRules []*rule, contained bool, depth int) {
	rt, _ := obj["resourceType"].(string)
	if !fhir.IsResourceType(rt) {
		return
	}
	saved := w.ec
	w.ec = w.newEC(obj, root)
	item := fhirpath.NewResourceItem(obj)
	n := nodeView{v: obj}
	w.apply(elemRules, n, item)
	rules := w.ix.byPath[rt]
	if contained {
		rules = w.ix.containedRules(rt)
	}
	w.apply(rules, n, item)
	var frame *dom3Frame
	for _, r := range rules {
		if r.dom3 {
			if list, _ := obj["contained"].([]any); len(list) > 0 {
				frame = &dom3Frame{refs: map[string]struct{}{}, self: make([]bool, len(list)), cur: -1}
				w.dom3 = append(w.dom3, frame)
			}
		}
	}
	w.object(obj, rt, root, depth, item)
	if frame != nil {
		w.dom3 = w.dom3[:len(w.dom3)-1]
		for _, r := range rules {
			if r.dom3 {
				w.decideDom3(r, obj, frame, item)
			}
		}
	}
	w.ec = saved
}

func (w *walker) newEC(res, root map[string]any) *fhirpath.EvalContext {
	return &fhirpath.EvalContext{
		Ctx:          w.ctx,
		Resource:     fhirpath.Collection{fhirpath.NewResourceItem(res)},
		RootResource: fhirpath.Collection{fhirpath.NewResourceItem(root)},
		Resolver:     w.opts.Resolver,
		Now:          w.opts.Now,
		Limits:       w.opts.Limits,
	}
}

// object walks the children of a complex node whose shape is at defPath.
func (w *walker) object(obj map[string]any, defPath string, root map[string]any, depth int, parent fhirpath.Item) {
	if depth > maxDepth || w.stopped {
		return
	}
	for _, k := range sortedKeys(obj) {
		if k == "resourceType" {
			continue
		}
		name := k
		var val any
		var ext any
		if strings.HasPrefix(k, "_") {
			name = k[1:]
			if _, has := obj[name]; has {
				continue // walked with its value
			}
			ext = obj[k]
		} else {
			val = obj[k]
			ext = obj["_"+k]
		}
		p := w.ix.planFor(defPath, name)
		if !p.ok {
			continue // unknown element: fhir.Validate reports it
		}
		w.child(p, name, val, ext, root, depth, parent)
		if w.stopped {
			return
		}
	}
}

// child walks the value(s) of one element.
func (w *walker) child(p *plan, name string, val, ext any, root map[string]any, depth int, parent fhirpath.Item) {
	vals, isArr := val.([]any)
	exts, _ := ext.([]any)
	if !isArr {
		if val == nil && ext == nil {
			return
		}
		vals = []any{val}
		if em, ok := ext.(map[string]any); ok {
			exts = []any{em}
		}
	}
	n := len(vals)
	if len(exts) > n {
		n = len(exts) // "_given" with no "given"
	}
	ord := 0 // position among the items the engine sees (it skips bare nulls)
	for i := 0; i < n; i++ {
		var v any
		if i < len(vals) {
			v = vals[i]
		}
		var em map[string]any
		if i < len(exts) {
			em, _ = exts[i].(map[string]any)
		}
		idx := -1
		if _, extArr := ext.([]any); isArr || (val == nil && extArr) {
			idx = i
		}
		if v == nil && em == nil {
			continue
		}
		w.path = append(w.path, seg{name, idx})
		w.node(p, name, v, em, root, depth, parent, ord)
		w.path = w.path[:len(w.path)-1]
		ord++
		if w.stopped {
			return
		}
	}
}

func (w *walker) node(p *plan, name string, v any, ext map[string]any, root map[string]any, depth int, parent fhirpath.Item, ord int) {
	if w.visits++; w.visits&255 == 0 && w.ctx.Err() != nil {
		w.stop()
		return
	}
	switch {
	case p.prim:
		w.seePrimitive(name, p.itemType, v)
		n := nodeView{v: v, ext: ext, prim: true}
		var item fhirpath.Item
		if p.engine || ext != nil || w.verify != nil {
			// Only navigation attaches the "_name" sibling to the item.
			item = w.primItem(parent, name, ord, v, p.itemType)
		}
		w.apply(p.rules, n, item)
		if ext != nil {
			// The sibling's id and extensions (ext-1 on each extension).
			w.object(ext, p.itemType, root, depth+1, item)
		}
	case p.resource:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		// A contained resource belongs to its container's root; any other
		// nested resource (Bundle.entry.resource, Parameters) is a root.
		next, contained := m, name == "contained"
		var f *dom3Frame
		if contained {
			next = root
			if k := len(w.dom3); k > 0 {
				f = w.dom3[k-1] // the frame of the resource holding this contained list
				f.cur = ord
			}
		}
		w.resource(m, next, p.rules, contained, depth+1)
		if f != nil {
			f.cur = -1
		}
	default:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		item := fhirpath.NewItem(m, p.itemType)
		w.apply(p.rules, nodeView{v: m}, item)
		w.object(m, p.lookup, root, depth+1, item)
	}
}

// primItem returns the engine's item for the ord-th value of a primitive
// element, by navigating from its parent.
func (w *walker) primItem(parent fhirpath.Item, name string, ord int, v any, typ string) fhirpath.Item {
	nav, err := fhirpath.Cached("`" + name + "`")
	if err == nil {
		w.item[0] = parent
		if out, err := nav.Evaluate(w.ec, w.item[:]); err == nil && ord < len(out) {
			return out[ord]
		}
	}
	return fhirpath.NewItem(v, typ)
}

// decideDom3 reports dom-3 from what the walk collected.
func (w *walker) decideDom3(r *rule, obj map[string]any, f *dom3Frame, item fhirpath.Item) {
	holds := dom3Holds(obj, f)
	if w.verify != nil {
		w.item[0] = item
		ok, known, err := r.expr.EvaluateBool(w.ec, w.item[:])
		w.verify(r, w.location(), holds, ok || !known, err)
	}
	if !holds {
		w.fail(r)
	}
}

// apply evaluates rules on one node and records failures.
func (w *walker) apply(rules []*rule, n nodeView, item fhirpath.Item) {
	for _, r := range rules {
		if r.dom3 {
			continue // decided after the walk
		}
		if w.opts.SkipWarnings && r.c.Severity == fhir.SeverityWarning {
			continue
		}
		if r.native != nil && w.verify != nil {
			w.item[0] = item
			ok, known, err := r.expr.EvaluateBool(w.ec, w.item[:])
			w.verify(r, w.location(), r.native(n), ok || !known, err)
		}
		if r.native != nil {
			if !r.native(n) {
				w.fail(r)
			}
			continue
		}
		if r.err != nil {
			w.notEvaluated(r, r.err)
			continue
		}
		w.item[0] = item
		ok, known, err := r.expr.EvaluateBool(w.ec, w.item[:])
		if err != nil {
			if w.ctx.Err() != nil {
				w.stop()
				return
			}
			w.notEvaluated(r, err)
			continue
		}
		if known && !ok {
			w.fail(r)
		}
	}
}

func (w *walker) fail(r *rule) {
	w.issues = append(w.issues, fhir.Issue{
		Severity:    r.c.Severity,
		Code:        IssueInvariant,
		Diagnostics: r.diag,
		Expression:  []string{w.location()},
		Key:         r.c.Key,
	})
}

func (w *walker) notEvaluated(r *rule, err error) {
	if w.skipped[r] {
		return
	}
	if w.skipped == nil {
		w.skipped = map[*rule]bool{}
	}
	w.skipped[r] = true
	code := "fhirpath-error"
	if fe, ok := fhirpath.AsError(err); ok {
		code = fe.Code
	}
	w.issues = append(w.issues, fhir.Issue{
		Severity:    fhir.SeverityWarning,
		Code:        IssueInvariant,
		Diagnostics: r.c.Key + ": " + DiagNotEvaluated + " (" + code + ")",
		Expression:  []string{w.location()},
		Key:         r.c.Key,
	})
}

func (w *walker) stop() {
	if w.stopped {
		return
	}
	w.stopped = true
	w.issues = append(w.issues, fhir.Issue{
		Severity:    fhir.SeverityError,
		Code:        "timeout",
		Diagnostics: "invariant check stopped: cancelled or deadline exceeded",
		Expression:  []string{w.location()},
	})
}

// location renders the current path as FHIRPath ("Patient.contact[0]").
func (w *walker) location() string {
	var b strings.Builder
	for i, s := range w.path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
		if s.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
