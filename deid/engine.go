package deid

import (
	"context"
	"crypto/cipher"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"phix/fhir"
	"phix/fhir/fhirpath"
	"phix/suite"
)

// Options tune an Engine.
type Options struct {
	// Scanner finds PHI in free text for redact rules with scan: true. Nil
	// uses the dlp engine (NewDLPScanner(nil)) with the patient's own names,
	// identifiers, phones, e-mails and addresses as hints.
	Scanner TextScanner
	// Reid, when set, receives pseudonym → original pairs (sealed at once
	// under the receiver's key) for every keyed pseudonym the engine makes.
	Reid *ReidTable
	// Now is the reference time for ages (Safe Harbor's 90-or-older); nil is
	// time.Now.
	Now func() time.Time
}

// Engine applies one profile with one set of keys. It is safe for
// concurrent use.
type Engine struct {
	profile *Profile
	ps      *Pseudonymizer
	aead    cipher.AEAD
	ff1     *FF1
	opts    Options
	scanner TextScanner

	byType   map[string][]int // resource type → indices into rules
	generic  []int            // rules for every resource type
	rules    []compiled
	suppress []compiled
	risk     *compiledRisk
	// typeSlots numbers the FHIR types that type rules select, so a tree
	// collects their nodes while it is built.
	typeSlots map[string]int
}

type compiled struct {
	Rule
	idx   int
	expr  *fhirpath.Expression
	dflt  bool            // from the profile default
	types map[string]bool // type selector (default rule: several)
	// qualified: a "Parent.element" type selector (e.g. Extension.value).
	qualified bool
	qparent   string
	qchild    string
	slots     []int  // typeSlots of types, in the order selectNodes uses
	head      string // pathHead of a member-chain path ("" otherwise)
}

func (c *compiled) matchQualified(n *node) bool {
	if n.def != c.qparent {
		return false
	}
	return n.key == c.qchild || (len(n.key) > len(c.qchild) && strings.HasPrefix(n.key, c.qchild) && isUpper(n.key[len(c.qchild)]))
}

// New builds an engine. Every key the profile needs is read here, so a
// missing key fails at once rather than per resource.
func New(p *Profile, keys Keys, opts Options) (*Engine, error) {
	if p == nil {
		return nil, ruleErr(-1, 0, "nil profile")
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	ps, err := NewPseudonymizer(keys, p.DateShift)
	if err != nil {
		return nil, err
	}
	e := &Engine{profile: p, ps: ps, opts: opts, byType: map[string][]int{}, scanner: opts.Scanner, typeSlots: map[string]int{}}
	if e.scanner == nil {
		e.scanner = defaultScanner
	}
	s, err := suite.Lookup(keys.Suite())
	if err != nil {
		return nil, failed("keys", "unknown suite")
	}
	needAEAD, needFF1 := false, false
	for _, r := range p.Rules {
		if r.Method == MethodEncrypt {
			needAEAD = needAEAD || r.Mode == "" || r.Mode == "aead"
			needFF1 = needFF1 || r.Mode == "ff1" || r.Mode == "cn-resident-id"
		}
	}
	if needAEAD {
		k, err := keys.EncryptionKey()
		if err != nil {
			return nil, &Error{Code: CodeDeidFailed, Rule: -1, Where: "keys", Msg: "encryption key unavailable", err: err}
		}
		if e.aead, err = s.NewAEAD(k); err != nil {
			return nil, failed("keys", "encryption key has the wrong size for the suite")
		}
	}
	if needFF1 {
		k, err := keys.FF1Key()
		if err != nil {
			return nil, &Error{Code: CodeDeidFailed, Rule: -1, Where: "keys", Msg: "FF1 key unavailable", err: err}
		}
		if e.ff1, err = NewFF1(k, 10, keys.Suite() == suite.GM); err != nil {
			return nil, failed("keys", "FF1 key has the wrong size for the suite")
		}
	}
	for i, r := range p.Rules {
		c := compiled{Rule: r, idx: i}
		if r.Path != "" {
			if c.expr, err = fhirpath.Cached(r.Path); err != nil {
				return nil, ruleErr(i, p.line(i), "FHIRPath does not compile")
			}
			c.head = pathHead(r.Path)
		} else {
			c.types = map[string]bool{r.Type: true}
			if p, ch, ok := strings.Cut(r.Type, "."); ok {
				c.qualified, c.qparent, c.qchild = true, p, ch
			}
		}
		if r.Method == MethodSuppress {
			e.suppress = append(e.suppress, c)
			continue
		}
		e.addRule(c, r)
	}
	if d := p.Default; d != nil && len(d.Types) > 0 {
		c := compiled{Rule: Rule{Method: d.Method}, idx: -1, dflt: true, types: map[string]bool{}}
		for _, t := range d.Types {
			c.types[t] = true
		}
		e.addRule(c, c.Rule)
	}
	if p.Risk != nil {
		if e.risk, err = p.Risk.compile(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *Engine) addRule(c compiled, r Rule) {
	if c.types != nil && !c.qualified {
		for typ := range c.types {
			s, ok := e.typeSlots[typ]
			if !ok {
				s = len(e.typeSlots)
				e.typeSlots[typ] = s
			}
			c.slots = append(c.slots, s)
		}
	}
	n := len(e.rules)
	e.rules = append(e.rules, c)
	scope := ""
	if r.Path != "" {
		first := r.Path
		if i := strings.IndexAny(first, ".([ "); i >= 0 {
			first = first[:i]
		}
		if fhir.IsResourceType(first) && first != "Resource" && first != "DomainResource" {
			scope = first
		}
	}
	if scope == "" {
		e.generic = append(e.generic, n)
		for t := range e.byType {
			e.byType[t] = append(e.byType[t], n)
		}
		return
	}
	if _, ok := e.byType[scope]; !ok {
		e.byType[scope] = append([]int(nil), e.generic...)
	}
	e.byType[scope] = append(e.byType[scope], n)
}

func (e *Engine) rulesFor(rtype string) []int {
	if r, ok := e.byType[rtype]; ok {
		return r
	}
	return e.generic
}

// Profile returns the engine's profile.
func (e *Engine) Profile() *Profile { return e.profile }

// Pseudonymizer returns the keyed functions shared with DICOM
// de-identification (date shift, pseudonyms, UIDs).
func (e *Engine) Pseudonymizer() *Pseudonymizer { return e.ps }

// patientCtx is what one resource's de-identification knows about its
// patient.
type patientCtx struct {
	id    string // patient id ("" when none)
	shift int    // valid when shifted
	// shifted is set once shift is computed: the keyed offset costs an
	// HMAC, and most profiles never shift.
	shifted bool
	hints   Hints
	scan    TextScanner // e.scanner, bound to hints when it can be
}

var defaultScanner = NewDLPScanner(nil)

func (pc *patientCtx) shiftDays(ps *Pseudonymizer) int {
	if !pc.shifted {
		pc.shift, pc.shifted = ps.DateShiftDays(pc.id), true
	}
	return pc.shift
}

// Resource de-identifies one resource. The input is not modified. A nil
// result with a nil error means a suppress rule dropped the resource. Any
// failure is PHI-6008 and nothing of the resource is returned.
func (e *Engine) Resource(ctx context.Context, r *fhir.Resource) (*fhir.Resource, error) {
	if r == nil || r.Object == nil {
		return nil, failed("resource", "nil resource")
	}
	if r.Type == "Bundle" {
		return e.Bundle(ctx, r)
	}
	pid := patientOf(r.Object, nil)
	pc := e.patient(pid, r.Object)
	out, err := e.resource(ctx, r.Object, pc, 0)
	if err != nil || out == nil {
		return nil, err
	}
	return toResource(out), nil
}

func toResource(obj map[string]any) *fhir.Resource {
	rt, _ := obj["resourceType"].(string)
	id, _ := obj["id"].(string)
	return &fhir.Resource{Type: rt, ID: id, Object: obj}
}

func (e *Engine) patient(pid string, patientObj map[string]any) *patientCtx {
	pc := &patientCtx{id: pid, scan: e.scanner}
	if rt, _ := patientObj["resourceType"].(string); rt == "Patient" {
		pc.hints = collectHints(patientObj)
	}
	if hb, ok := e.scanner.(HintBinder); ok {
		pc.scan = hb.WithHints(pc.hints)
	}
	return pc
}

// resource de-identifies a copy of obj (an object at depth of the input,
// for the copy's depth limit); it recovers from any panic in a method as
// PHI-6008 so a malformed resource never passes through.
func (e *Engine) resource(ctx context.Context, obj map[string]any, pc *patientCtx, depth int) (out map[string]any, err error) {
	rtype, _ := obj["resourceType"].(string)
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, failed(rtype, "internal error while de-identifying")
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeDeidFailed, Rule: -1, Where: rtype, Msg: "canceled", err: err}
	}
	if !fhir.IsResourceType(rtype) {
		return nil, failed("resourceType", "not a FHIR R4 resource type")
	}
	t := newTree(obj, rtype, depth, e.typeSlots, len(e.typeSlots))
	if t == nil {
		return nil, failed(rtype, "resource nests too deeply")
	}
	defer t.release()
	cp := t.root
	ec := &fhirpath.EvalContext{Ctx: ctx}
	for _, s := range e.suppress {
		res, err := s.expr.EvaluateResource(ec, cp)
		if err != nil {
			return nil, e.evalErr(s.idx, rtype, err)
		}
		if truthy(res) {
			return nil, nil
		}
	}
	if e.profile.IDs == "pseudonymize" {
		e.pseudonymizeIDs(t)
	}
	ruleIdx := e.rulesFor(rtype)
	// Select first, on the unmodified tree; apply in rule order after.
	sel := make([][]int, len(ruleIdx))
	for k, ri := range ruleIdx {
		c := &e.rules[ri]
		if sel[k], err = e.selectNodes(ec, t, c); err != nil {
			return nil, e.evalErr(c.idx, rtype, err)
		}
	}
	for k, ri := range ruleIdx {
		c := &e.rules[ri]
		for _, i := range sel[k] {
			if err := e.applyRule(ctx, t, c, i, pc); err != nil {
				return nil, err
			}
		}
	}
	for k, i := range t.nested {
		n := &t.nodes[i]
		sub, _ := t.get(i).(map[string]any)
		res, err := e.resource(ctx, sub, pc, t.nestedDepth[k])
		if err != nil {
			return nil, err
		}
		if res == nil {
			t.set(i, removed)
			continue
		}
		_ = n
		t.set(i, res)
	}
	cleanup(cp, rtype)
	e.tag(cp)
	return cp, nil
}

func (e *Engine) evalErr(rule int, rtype string, err error) error {
	msg := "selector failed"
	if fe, ok := fhirpath.AsError(err); ok {
		msg = "selector failed: " + fe.Code
	}
	return &Error{Code: CodeDeidFailed, Rule: rule, Line: e.profile.line(rule), Where: rtype, Msg: msg}
}

func truthy(c fhirpath.Collection) bool {
	if len(c) == 0 {
		return false
	}
	if len(c) == 1 {
		if b, ok := c[0].Value().(bool); ok {
			return b
		}
	}
	return true
}

// selectNodes returns the nodes a rule selects.
func (e *Engine) selectNodes(ec *fhirpath.EvalContext, t *tree, c *compiled) ([]int, error) {
	if c.types != nil {
		var out []int
		if c.qualified {
			for i := range t.nodes {
				if c.matchQualified(&t.nodes[i]) {
					out = append(out, i)
				}
			}
			return out, nil
		}
		if len(c.slots) == 1 {
			return t.bySlot[c.slots[0]], nil // read only, while t lives
		}
		for _, s := range c.slots {
			out = append(out, t.bySlot[s]...)
		}
		if len(c.types) > 1 {
			slices.Sort(out) // preorder: ancestors before descendants
		}
		return out, nil
	}
	if c.head != "" && !mayHave(t.root, c.head) {
		return nil, nil // a member chain whose first name is absent selects nothing
	}
	res, err := c.expr.EvaluateResource(ec, t.root)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, it := range res {
		par, key, idx, ok := it.Location()
		if !ok {
			if m, isObj := it.Raw().(map[string]any); isObj && samePtr(m, t.root) {
				for i := range t.nodes {
					out = append(out, i)
				}
			}
			continue // System values computed by the expression
		}
		if i, found := t.locate(par, key, idx); found {
			out = append(out, i)
		}
	}
	return out, nil
}

// tag adds the MASKED security tag the seed's $de-identify response shows.
func (e *Engine) tag(obj map[string]any) {
	display := e.profile.Tag
	if display == "" {
		display = "De-identified per " + e.profile.Name
	}
	meta, _ := obj["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["meta"] = meta
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(tags, map[string]any{
		"system":  "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
		"code":    "MASKED",
		"display": display,
	})
}

const maxCopyDepth = 128

func deepCopy(v any, depth int) any {
	if depth > maxCopyDepth {
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e, depth+1)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e, depth+1)
		}
		return a
	default:
		return v
	}
}

// patientOf finds the patient a resource belongs to: its own id for a
// Patient, else the subject/patient/beneficiary reference. resolve maps a
// reference (e.g. a Bundle fullUrl) to a patient id when known.
func patientOf(obj map[string]any, resolve map[string]string) string {
	if rt, _ := obj["resourceType"].(string); rt == "Patient" {
		id, _ := obj["id"].(string)
		return id
	}
	for _, k := range []string{"subject", "patient", "beneficiary", "individual"} {
		ref, _ := obj[k].(map[string]any)
		if ref == nil {
			continue
		}
		s, _ := ref["reference"].(string)
		if s == "" {
			continue
		}
		if id, ok := resolve[s]; ok {
			return id
		}
		if rest, ok := strings.CutPrefix(s, "urn:uuid:"); ok {
			return rest
		}
		if i := strings.Index(s, "Patient/"); i >= 0 {
			id := s[i+len("Patient/"):]
			if j := strings.IndexByte(id, '/'); j >= 0 {
				id = id[:j]
			}
			return id
		}
	}
	return ""
}

var _ = json.Number("")
