package consent

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"phix/fhir"
)

// DefaultTTL is seed 002's consent cache lifetime.
const DefaultTTL = 60 * time.Second

// DefaultMaxEntries bounds the cache (patients plus cached decisions).
const DefaultMaxEntries = 100_000

// Source gives the Consent resources of a patient ("Patient/123").
type Source interface {
	Consents(ctx context.Context, patient string) ([]*fhir.Resource, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, patient string) ([]*fhir.Resource, error)

// Consents implements Source.
func (f SourceFunc) Consents(ctx context.Context, patient string) ([]*fhir.Resource, error) {
	return f(ctx, patient)
}

// Options tune an Engine. Zero values take the defaults.
type Options struct {
	TTL        time.Duration
	MaxEntries int
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// Audit, when set, is told of every consent left out of a load
	// (bad signature, malformed); it must not block.
	Audit func(patient string, ig Ignored)
}

// Engine decides requests with a per-patient cache of compiled, verified
// consents and of class-level decisions, both living at most TTL and
// dropped at once by Invalidate. Safe for concurrent use.
type Engine struct {
	src  Source
	keys KeyResolver
	opt  Options

	mu       sync.Mutex
	gen      uint64
	entries  int
	patients map[string]*patientEntry
}

type patientEntry struct {
	consents  []*Consent
	ignored   []Ignored
	needs     Fields // the resource fields some consent depends on (0: class-level)
	expires   time.Time
	next      time.Time // next period boundary; zero: none
	decisions map[decisionKey]cachedDecision
}

type decisionKey struct {
	actor, roles, action, purpose, class string
}

type cachedDecision struct {
	d       Decision
	expires time.Time
}

// NewEngine returns an engine reading consents from src and trusting the
// signing keys keys vouches for.
func NewEngine(src Source, keys KeyResolver, opt Options) *Engine {
	if opt.TTL <= 0 {
		opt.TTL = DefaultTTL
	}
	if opt.MaxEntries <= 0 {
		opt.MaxEntries = DefaultMaxEntries
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Engine{src: src, keys: keys, opt: opt, patients: map[string]*patientEntry{}}
}

// Invalidate drops everything cached for patient; call it whenever a
// Consent of that patient is created, updated or deleted. The next Decide
// reloads.
func (e *Engine) Invalidate(patient string) {
	patient = normRef(patient)
	e.mu.Lock()
	e.gen++
	if pe, ok := e.patients[patient]; ok {
		e.entries -= 1 + len(pe.decisions)
		delete(e.patients, patient)
	}
	e.mu.Unlock()
}

// Decide answers req. A request with Time set is evaluated at that time and
// not served from or stored in the decision cache.
func (e *Engine) Decide(ctx context.Context, req Request) (Decision, error) {
	req.Patient = normRef(req.Patient)
	req.Actor.Reference = normRef(req.Actor.Reference)
	now := e.opt.Now()
	useCache := req.Time.IsZero()
	if useCache {
		req.Time = now
	}
	key := decisionKey{
		actor: req.Actor.Reference, roles: rolesKey(req.Actor.Roles), action: req.Action,
		purpose: req.Purpose.System + "|" + req.Purpose.Code, class: req.Resource.Type,
	}

	e.mu.Lock()
	pe := e.patients[req.Patient]
	if pe != nil && !now.Before(pe.expires) {
		e.entries -= 1 + len(pe.decisions)
		delete(e.patients, req.Patient)
		pe = nil
	}
	if pe != nil && useCache && pe.needs == 0 {
		if cd, ok := pe.decisions[key]; ok && now.Before(cd.expires) {
			e.mu.Unlock()
			return cd.d, nil
		}
	}
	gen := e.gen
	e.mu.Unlock()

	if pe == nil {
		var err error
		if pe, err = e.loadAndStore(ctx, req.Patient, now, gen); err != nil {
			return Decision{}, err
		}
	}

	d := Evaluate(pe.consents, req)
	d.Ignored = append(d.Ignored[:len(d.Ignored):len(d.Ignored)], pe.ignored...)
	if useCache && pe.needs == 0 {
		exp := pe.expires
		if !pe.next.IsZero() && pe.next.Before(exp) {
			exp = pe.next
		}
		e.mu.Lock()
		if e.gen == gen && e.patients[req.Patient] == pe {
			if _, had := pe.decisions[key]; !had {
				e.entries++
			}
			pe.decisions[key] = cachedDecision{d: d, expires: exp}
			e.evict()
		}
		e.mu.Unlock()
	}
	return d, nil
}

// Needs returns the resource fields the patient's consents consult (0 when
// their decisions depend on the resource's type alone). A caller describing
// many resources of one patient can describe only these: a field no
// provision reads cannot change a decision. The patient's consents are
// loaded (and cached) as by Decide.
func (e *Engine) Needs(ctx context.Context, patient string) (Fields, error) {
	patient = normRef(patient)
	now := e.opt.Now()
	e.mu.Lock()
	pe := e.patients[patient]
	if pe != nil && now.Before(pe.expires) {
		e.mu.Unlock()
		return pe.needs, nil
	}
	gen := e.gen
	e.mu.Unlock()
	pe, err := e.loadAndStore(ctx, patient, now, gen)
	if err != nil {
		return 0, err
	}
	return pe.needs, nil
}

// CachedNeeds is Needs without loading: ok is false when the patient's
// consents are not in the cache.
func (e *Engine) CachedNeeds(patient string) (need Fields, ok bool) {
	patient = normRef(patient)
	now := e.opt.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if pe := e.patients[patient]; pe != nil && now.Before(pe.expires) {
		return pe.needs, true
	}
	return 0, false
}

// loadAndStore loads the patient's consents and caches them unless an
// Invalidate raced with the load (the generation moved on from gen).
func (e *Engine) loadAndStore(ctx context.Context, patient string, now time.Time, gen uint64) (*patientEntry, error) {
	pe, err := e.load(ctx, patient, now)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.gen == gen {
		e.store(patient, pe)
	}
	e.mu.Unlock()
	return pe, nil
}

func (e *Engine) load(ctx context.Context, patient string, now time.Time) (*patientEntry, error) {
	rs, err := e.src.Consents(ctx, patient)
	if err != nil {
		return nil, &Error{Code: "source", Msg: "loading the patient's consents failed"}
	}
	pe := &patientEntry{expires: now.Add(e.opt.TTL), decisions: map[decisionKey]cachedDecision{}}
	for _, r := range rs {
		c, err := Compile(r, e.keys)
		if err != nil {
			id := ""
			if r != nil {
				id = r.ID
			}
			ig := Ignored{ConsentID: id, Code: CodeNone, Reason: "invalid-consent"}
			pe.ignored = append(pe.ignored, ig)
			if e.opt.Audit != nil {
				e.opt.Audit(patient, ig)
			}
			continue
		}
		if !c.Verified && e.opt.Audit != nil {
			e.opt.Audit(patient, Ignored{ConsentID: c.ID, Code: CodeBadSignature, Reason: c.SigReason})
		}
		pe.needs |= c.needs
		pe.consents = append(pe.consents, c)
	}
	pe.next = nextBoundary(pe.consents, now)
	return pe, nil
}

func (e *Engine) store(patient string, pe *patientEntry) {
	if old, ok := e.patients[patient]; ok {
		e.entries -= 1 + len(old.decisions)
	}
	e.patients[patient] = pe
	e.entries++
	e.evict()
}

// evict drops whole patients (expired first, then arbitrary ones) until
// the cache is within MaxEntries.
func (e *Engine) evict() {
	if e.entries <= e.opt.MaxEntries {
		return
	}
	now := e.opt.Now()
	for p, pe := range e.patients {
		if !now.Before(pe.expires) {
			e.entries -= 1 + len(pe.decisions)
			delete(e.patients, p)
		}
	}
	for p, pe := range e.patients {
		if e.entries <= e.opt.MaxEntries {
			break
		}
		e.entries -= 1 + len(pe.decisions)
		delete(e.patients, p)
	}
}

// Len returns the number of cache entries (patients plus decisions).
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.entries
}

func rolesKey(roles []Coding) string {
	switch len(roles) {
	case 0:
		return ""
	case 1:
		return roles[0].System + "|" + roles[0].Code
	}
	parts := make([]string, len(roles))
	for i, r := range roles {
		parts[i] = r.System + "|" + r.Code
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
