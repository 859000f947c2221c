package fhirserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"phix/access/breakglass"
	"phix/access/policy"
	"phix/access/roles"
	"phix/access/scopes"
	"phix/consent"
	"phix/errcode"
	"phix/fhir"
	"phix/fhir/search"
	"phix/store"
)

// Enforcement turns on access enforcement (docs/enforcement.md): every
// resource the server serves or writes passes one decision point made of the
// token's SMART scopes, the policy engine and the patient's signed consents.
type Enforcement struct {
	// Policy is the policy engine (access/policy). Required.
	Policy *policy.Engine
	// ConsentKeys vouches for consent signing keys. Required: a consent
	// counts only when its signature verifies against one of these keys.
	ConsentKeys consent.KeyResolver
	// ConsentRequired selects the opt-in model: a patient's data is served
	// only on the basis of a permitting consent (no consent: PHI-6001). The
	// default (false) is opt-out: the policy alone decides when no consent
	// applies, but a consent that applies is always honoured, and an
	// unverifiable consent that would have applied refuses (PHI-6004).
	ConsentRequired bool
	// BreakGlass, when set, enables POST $break-glass and the review queue;
	// an active grant of the caller for the patient opens access under the
	// policy's break-glass rules.
	BreakGlass *breakglass.Service
	// SecondFactor verifies a TOTP code (auth/totp.Manager). When set, it
	// gates Patient/$erase and consent overrides (update or delete of a
	// stored Consent): the caller sends the code in the X-TOTP header.
	SecondFactor SecondFactor
	// Grants, when set, reports an explicit treatment grant of user (a
	// FHIR reference such as Practitioner/1, or Client/<client id> for a
	// machine client without a FHIR user) for patient (a logical id).
	Grants func(ctx context.Context, user, patient string) (bool, error)
	// MaxScan bounds how many matches a filtered search or history scans to
	// compute an exact total (default 10,000); a search matching more is
	// refused as too costly and must be narrowed.
	MaxScan int
	// TTL of the decision caches (consents, treatment relationships, policy
	// decisions); default 60 s (seed 002).
	TTL time.Duration
	// OrganisationTags makes the owning organisation of a resource a
	// policy attribute (resource.org): the server tags every resource it
	// writes with the writer's organisation (meta.tag system
	// OrganisationTagSystem; an update keeps the first owner, and a tag a
	// client sends is replaced), and decisions read it, so the policy's
	// other-organisation rule keeps one organisation's principals out of
	// another's data on a node several organisations share. Off: every
	// resource is the node's own (org "").
	OrganisationTags bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// OrganisationTagSystem is the meta.tag system of a resource's owning
// organisation (Enforcement.OrganisationTags); the code is the
// organisation's id, as in the principal's org claim.
const OrganisationTagSystem = "urn:phix:organization"

// SecondFactor verifies a user's TOTP code (auth/totp.Manager satisfies it).
type SecondFactor interface {
	Verify(ctx context.Context, user, code string) error
}

// Headers of the enforcement layer.
const (
	// HeaderPurpose chooses the purpose of use of a request (v3
	// PurposeOfUse: TREAT, ETREAT, BTG, HOPERAT, HRESCH, PUBHLTH, HPAYMT).
	// It overrides the token's purpose_of_use claim; without either, the
	// purpose is the default of the caller's role.
	HeaderPurpose = "X-Purpose-Of-Use"
	// HeaderTOTP carries a TOTP code where a second factor is required.
	HeaderTOTP = "X-TOTP"
)

// DefaultMaxScan is Enforcement.MaxScan's default.
const DefaultMaxScan = 10000

// Error codes of the enforcement layer that are not PHI-60xx rows.
const (
	CodeSecondFactor Code = "second-factor-required"
	CodeTooCostly    Code = "too-costly"
)

func init() {
	errorTable[CodeSecondFactor] = codeInfo{http.StatusUnauthorized, "security", "a valid TOTP code (X-TOTP) is required"}
	errorTable[CodeTooCostly] = codeInfo{http.StatusForbidden, "too-costly", "the filtered result is too large; narrow the search"}
}

// enforcer is the decision point.
type enforcer struct {
	s        *Server
	cfg      Enforcement
	inner    store.Store // the store under enforcement (plaintext, unfiltered)
	consents *consent.Engine
	treat    *ttlCache[bool]
	desc     *ttlCache[*subject] // per stored version
	pol      *ttlCache[policy.Decision]
	maxScan  int
}

func newEnforcer(s *Server, cfg Enforcement, inner store.Store) (*enforcer, error) {
	if cfg.Policy == nil || cfg.ConsentKeys == nil {
		return nil, errors.New("fhirserver: Enforcement needs Policy and ConsentKeys")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = consent.DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &enforcer{s: s, cfg: cfg, inner: inner, maxScan: cfg.MaxScan}
	if e.maxScan <= 0 {
		e.maxScan = DefaultMaxScan
	}
	e.treat = newTTLCache[bool](cfg.TTL, cfg.Now)
	e.desc = newTTLCache[*subject](cfg.TTL, cfg.Now)
	e.pol = newTTLCache[policy.Decision](cfg.TTL, cfg.Now)
	e.consents = consent.NewEngine(consent.SourceFunc(e.loadConsents), cfg.ConsentKeys, consent.Options{
		TTL: cfg.TTL, Now: cfg.Now, Audit: e.consentIgnored,
	})
	return e, nil
}

// loadConsents is the consent engine's source: the patient's Consent
// resources, read under the enforcement layer.
func (e *enforcer) loadConsents(ctx context.Context, patient string) ([]*fhir.Resource, error) {
	q, _, err := search.Parse("Consent", url.Values{"patient": {patient}}, search.ParseOptions{MaxCount: 1000})
	if err != nil {
		return nil, err
	}
	q.Count, q.Total = 1001, search.TotalNone
	res, err := e.inner.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(res.Matches) > 1000 {
		return nil, errors.New("fhirserver: more than 1000 consents for one patient")
	}
	out := make([]*fhir.Resource, 0, len(res.Matches))
	for _, rec := range res.Matches {
		r, err := fhir.Parse(rec.Body, fhir.ParseOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// consentIgnored audits a consent left out of decisions (bad signature,
// malformed): a security alert naming only the pseudonymous consent.
func (e *enforcer) consentIgnored(patient string, ig consent.Ignored) {
	e.s.log.Warn("consent ignored", "reason", string(ig.Code))
	if e.s.audit == nil {
		return
	}
	ev := auditEventIgnored(e.s.audit, patient, ig)
	e.s.audit.write(context.Background(), http.MethodPost, ev)
}

// ---------------------------------------------------------------- request

const enfReqKey ctxKey = 40

// enfReq is the enforcement state of one request: who, for what purpose,
// and what was decided (for the audit event).
type enfReq struct {
	p        *Principal
	pp       policy.Principal
	purpose  string
	totp     string
	internal bool // server-initiated work inside the request: not filtered

	mu         sync.Mutex
	permits    int
	denies     int
	reasons    map[string]bool
	consentID  string
	bgUsed     bool
	bg         map[string]bool // patient id -> active grant
	touched    map[string]bool // patients whose Consents changed in this request
	treatments map[string]bool // patients whose CareTeam/Encounter changed
}

// enforceContext adds the enforcement state to a request's context (called
// by the middleware after authentication).
func (s *Server) enforceContext(r *http.Request, p *Principal) *http.Request {
	if s.enf == nil || p == nil {
		return r
	}
	rq := &enfReq{p: p, reasons: map[string]bool{}, bg: map[string]bool{}}
	rq.pp = policy.Principal{ID: p.Subject, Roles: principalRoles(p), Org: p.Org}
	rq.purpose = strings.TrimSpace(r.Header.Get(HeaderPurpose))
	if rq.purpose == "" {
		rq.purpose = p.Purpose
	}
	if rq.purpose == "" {
		rq.purpose = defaultPurpose(rq.pp.Roles)
	}
	rq.totp = strings.TrimSpace(r.Header.Get(HeaderTOTP))
	return r.WithContext(context.WithValue(r.Context(), enfReqKey, rq))
}

func enfReqFrom(ctx context.Context) *enfReq {
	rq, _ := ctx.Value(enfReqKey).(*enfReq)
	if rq == nil || rq.internal {
		return nil
	}
	return rq
}

// internalContext marks server-initiated work (the deletion versions of an
// erasure) that the caller's decision already covered.
func internalContext(ctx context.Context) context.Context {
	rq, _ := ctx.Value(enfReqKey).(*enfReq)
	if rq == nil {
		return ctx
	}
	in := &enfReq{p: rq.p, pp: rq.pp, purpose: rq.purpose, internal: true}
	return context.WithValue(ctx, enfReqKey, in)
}

// principalRoles are the token's roles, or those of a static token's coarse role.
func principalRoles(p *Principal) []roles.Role {
	if len(p.Roles) > 0 {
		return p.Roles
	}
	switch roleOf(p) {
	case RoleClinician:
		return []roles.Role{roles.Clinician}
	case RoleAuditor:
		return []roles.Role{roles.Auditor}
	}
	return nil
}

// defaultPurpose is the purpose of use when neither the header nor the
// token names one: treatment for the care roles, research for researchers,
// operations for everyone else.
func defaultPurpose(rs []roles.Role) string {
	switch {
	case slices.Contains(rs, roles.Clinician), slices.Contains(rs, roles.Nurse), slices.Contains(rs, roles.Registrar):
		return "TREAT"
	case slices.Contains(rs, roles.Researcher):
		return "HRESCH"
	}
	return "HOPERAT"
}

func (rq *enfReq) note(allowed bool, reasons []string, consentID string) {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if allowed {
		rq.permits++
	} else {
		rq.denies++
	}
	for _, r := range reasons {
		if len(rq.reasons) < 32 {
			rq.reasons[r] = true
		}
	}
	if consentID != "" && rq.consentID == "" && validID(consentID) {
		rq.consentID = consentID
	}
}

// ---------------------------------------------------------------- decision

// subject is what one decision is about: the resource's type, patient,
// labels and consent description. It is cached per stored version (a
// version never changes), so a repeated decision neither parses nor
// describes the resource again. The consent description holds the fields
// in known (labels and profiles always; codes, date and references only
// when the patient's consents read them: those cost a walk of the
// resource per search parameter).
type subject struct {
	typ     string
	patient string // logical id of the patient the resource belongs to; "" none
	org     string // owning organisation (meta.tag OrganisationTagSystem); "" none
	labels  []string
	cres    consent.Resource
	known   consent.Fields
}

// alwaysKnown are the consent fields every description carries: meta
// alone gives them.
const alwaysKnown = consent.FieldLabels | consent.FieldProfiles

// describe describes res with at least the consent fields in need.
func describe(res *fhir.Resource, need consent.Fields) *subject {
	sub := &subject{typ: res.Type, labels: securityLabels(res), org: ownerTag(res)}
	if res.Type == "Patient" {
		sub.patient = res.ID
	} else {
		sub.patient = compartmentPatient(res)
	}
	sub.known = need | alwaysKnown
	sub.cres = describeResource(res, sub.known)
	return sub
}

// with returns sub described with the fields in need as well: a copy,
// since cached subjects are shared between requests.
func (sub *subject) with(res *fhir.Resource, need consent.Fields) *subject {
	c := *sub
	c.known |= need
	c.cres = describeResource(res, c.known)
	return &c
}

// complete returns sub with every field the patient's consents read for a
// read or search (sub itself when it has them all), parsing the body only
// when a field is missing.
func (e *enforcer) complete(ctx context.Context, action string, sub *subject, lr *lazyResource) (*subject, error) {
	if sub.patient == "" || !isRead(action) {
		return sub, nil
	}
	need, err := e.consents.Needs(ctx, "Patient/"+sub.patient)
	if err != nil {
		return nil, err
	}
	if need&^sub.known == 0 {
		return sub, nil
	}
	res, err := lr.get()
	if err != nil {
		return nil, err
	}
	return sub.with(res, need), nil
}

// lazyResource parses a stored body once, when something needs the whole
// resource (query-restricted scopes, redaction, consent fields beyond
// meta).
type lazyResource struct {
	body []byte
	res  *fhir.Resource
	err  error
}

func (l *lazyResource) get() (*fhir.Resource, error) {
	if l.res == nil && l.err == nil {
		l.res, l.err = fhir.Parse(l.body, fhir.ParseOptions{})
	}
	return l.res, l.err
}

// brief returns what describe(res, 0) reads of the resource: the whole
// resource when already parsed, else only meta, contained and the members
// its patient-compartment parameters start at (fhir.ParseMembers), which
// skips most of a large body.
func (l *lazyResource) brief(typ string) (*fhir.Resource, error) {
	if l.res != nil || l.err != nil {
		return l.res, l.err
	}
	keep, ok := briefMembers(typ)
	if !ok {
		return l.get()
	}
	return fhir.ParseMembers(l.body, func(k string) bool { return keep[k] }, fhir.ParseOptions{})
}

var briefPlans sync.Map // type -> map[string]bool (nil: parse in full)

// briefMembers lists the top-level members describe(res, 0) reads for a
// type: meta (labels, profiles), contained ("#id" references) and the first
// step of every element of its patient-compartment reference parameters.
func briefMembers(typ string) (map[string]bool, bool) {
	if v, ok := briefPlans.Load(typ); ok {
		m := v.(map[string]bool)
		return m, m != nil
	}
	m := map[string]bool{"meta": true, "contained": true}
	for _, code := range search.PatientCompartment(typ) {
		p := search.Lookup(typ, code)
		if p == nil || p.Type != search.TypeReference {
			continue // compartmentPatient reads none of these
		}
		for _, e := range p.Elements {
			if len(e.Steps) == 0 {
				m = nil // the element is the resource itself
				break
			}
			m[e.Steps[0].Name] = true
		}
		if m == nil {
			break
		}
	}
	briefPlans.Store(typ, m)
	return m, m != nil
}

// ownerTag returns the code of res's OrganisationTagSystem meta.tag, or "".
func ownerTag(res *fhir.Resource) string {
	meta, _ := res.Object["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, v := range tags {
		if c, ok := v.(map[string]any); ok && c["system"] == OrganisationTagSystem {
			code, _ := c["code"].(string)
			return code
		}
	}
	return ""
}

// setOwnerTag replaces res's OrganisationTagSystem tags by one naming org
// (none when org is "").
func setOwnerTag(res *fhir.Resource, org string) {
	meta, _ := res.Object["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	kept := make([]any, 0, len(tags)+1)
	for _, v := range tags {
		if c, ok := v.(map[string]any); ok && c["system"] == OrganisationTagSystem {
			continue
		}
		kept = append(kept, v)
	}
	if org != "" {
		kept = append(kept, map[string]any{"system": OrganisationTagSystem, "code": org})
	}
	if meta == nil {
		if len(kept) == 0 {
			return
		}
		meta = map[string]any{}
		res.Object["meta"] = meta
	}
	if len(kept) == 0 {
		delete(meta, "tag")
	} else {
		meta["tag"] = kept
	}
}

// resourceOrg is the policy's resource.org of sub.
func (e *enforcer) resourceOrg(sub *subject) string {
	if !e.cfg.OrganisationTags {
		return ""
	}
	return sub.org
}

// securityLabels returns the codes of meta.security.
func securityLabels(res *fhir.Resource) []string {
	meta, _ := res.Object["meta"].(map[string]any)
	sec, _ := meta["security"].([]any)
	var out []string
	for _, v := range sec {
		if c, ok := v.(map[string]any); ok {
			if code, ok := c["code"].(string); ok && code != "" {
				out = append(out, code)
			}
		}
	}
	return out
}

// denial is a refusal with its PHI-60xx code and reasons (policy ids and
// the enforcement layer's own check names; never request data).
func denial(code errcode.Code, reasons []string) *Error {
	e := errorf(Code(code), "access denied: "+strings.Join(reasons, ", "))
	return e
}

var interactionOf = map[string]scopes.Interaction{
	policy.ActionRead: scopes.Read, policy.ActionSearch: scopes.Search,
	policy.ActionCreate: scopes.Create, policy.ActionUpdate: scopes.Update, policy.ActionDelete: scopes.Delete,
}

// restricted reports whether any of the caller's scopes has a query
// restriction (then a concrete resource must be matched).
func restricted(p *Principal) bool {
	for _, sc := range p.Scopes.Resources {
		if sc.Restriction != nil {
			return true
		}
	}
	return false
}

// scopeAllows checks the token's SMART scopes against a concrete resource.
// A principal without scopes (a static operator token) is not a SMART
// client; the policy and consent still apply to it.
func scopeAllows(p *Principal, action string, sub *subject, lr *lazyResource) (bool, error) {
	if p.Scopes == nil {
		return true, nil
	}
	in := interactionOf[action]
	patientCtx := p.Patient != "" && sub.patient != "" && p.Patient == sub.patient
	if !restricted(p) {
		return p.Scopes.Allows(in, sub.typ, scopes.User) || p.Scopes.Allows(in, sub.typ, scopes.System) ||
			(patientCtx && p.Scopes.Allows(in, sub.typ, scopes.Patient)), nil
	}
	res, err := lr.get()
	if err != nil {
		return false, err
	}
	if p.Scopes.Matches(in, scopes.User, res) || p.Scopes.Matches(in, scopes.System, res) {
		return true, nil
	}
	return patientCtx && p.Scopes.Matches(in, scopes.Patient, res), nil
}

// decide is the decision point for one resource. It returns the consent
// obligations of an allowed access, a denial (*Error) or an internal error.
func (e *enforcer) decide(ctx context.Context, rq *enfReq, action string, sub *subject, lr *lazyResource) ([]consent.Obligation, *Error, error) {
	ok, err := scopeAllows(rq.p, action, sub, lr)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		rs := []string{"smart-scope"}
		rq.note(false, rs, "")
		return nil, denial(errcode.MinimumNecessaryViolated, rs), nil
	}
	var cd consent.Decision
	consentEffect := ""
	if sub.patient != "" && isRead(action) {
		var err error
		cd, err = e.consents.Decide(ctx, consent.Request{
			Patient:  "Patient/" + sub.patient,
			Actor:    consent.Actor{Reference: rq.p.FHIRUser},
			Action:   "access",
			Purpose:  consent.Coding{System: "http://terminology.hl7.org/CodeSystem/v3-ActReason", Code: rq.purpose},
			Resource: sub.cres,
		})
		if err != nil {
			return nil, nil, err
		}
		consentEffect = string(cd.Effect)
	}
	bg, err := e.breakGlass(ctx, rq, sub.patient)
	if err != nil {
		return nil, nil, err
	}
	tr, err := e.treatment(ctx, rq, sub.patient)
	if err != nil {
		return nil, nil, err
	}
	d := e.policyDecide(policy.Input{
		Principal: rq.pp, Action: action,
		Resource: policy.Resource{Type: sub.typ, Labels: sub.labels, Org: e.resourceOrg(sub)},
		Purpose:  rq.purpose, Treatment: tr, BreakGlass: bg, Consent: consentEffect,
	})
	if !d.Allow {
		code := d.Code
		// The patient's own decision is the more specific answer than
		// PHI-6011 (the reasons still say break-glass-available).
		if slices.Contains(d.Reasons, "consent-denied") {
			code = errcode.ConsentDenied
			if cd.Code == consent.CodeConflict {
				code = errcode.ConsentConflict
			}
		}
		rq.note(false, d.Reasons, cd.ConsentID)
		return nil, denial(code, d.Reasons), nil
	}
	// No consent basis: refused where the model (or an unverifiable
	// consent) says so, unless a break-glass grant covers the access.
	if cd.Effect == consent.NotApplicable && !bg {
		var code errcode.Code
		switch {
		case cd.Code == consent.CodeBadSignature:
			code = errcode.ConsentSignatureInvalid
		case e.cfg.ConsentRequired && cd.Code == consent.CodeExpired:
			code = errcode.ConsentExpired
		case e.cfg.ConsentRequired:
			code = errcode.ConsentRequired
		}
		if code != "" {
			rs := []string{"consent-basis:" + string(code)}
			rq.note(false, rs, "")
			return nil, denial(code, rs), nil
		}
	}
	reasons := d.Reasons
	if bg {
		rq.mu.Lock()
		rq.bgUsed = true
		rq.mu.Unlock()
	}
	rq.note(true, reasons, cd.ConsentID)
	if cd.Effect == consent.Permit {
		return cd.Obligations, nil, nil
	}
	return nil, nil, nil
}

func isRead(action string) bool { return action == policy.ActionRead || action == policy.ActionSearch }

// policyDecide caches policy decisions by their whole input (60 s).
func (e *enforcer) policyDecide(in policy.Input) policy.Decision {
	var b strings.Builder
	b.WriteString(in.Principal.ID)
	b.WriteByte(0)
	for _, r := range in.Principal.Roles {
		b.WriteString(string(r))
		b.WriteByte(',')
	}
	b.WriteByte(0)
	b.WriteString(in.Principal.Org)
	b.WriteByte(0)
	b.WriteString(in.Action)
	b.WriteByte(0)
	b.WriteString(in.Resource.Type)
	b.WriteByte(0)
	b.WriteString(in.Resource.Org)
	b.WriteByte(0)
	for _, l := range in.Resource.Labels {
		b.WriteString(l)
		b.WriteByte(',')
	}
	b.WriteByte(0)
	b.WriteString(in.Purpose)
	b.WriteByte(0)
	b.WriteString(in.Consent)
	for _, f := range []bool{in.Treatment.CareTeam, in.Treatment.EncounterParticipant, in.Treatment.ExplicitGrant, in.BreakGlass} {
		if f {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	key := b.String()
	if d, ok := e.pol.get(key); ok {
		return d
	}
	d := e.cfg.Policy.Decide(in)
	e.pol.put(key, d)
	return d
}

// breakGlass reports whether an active grant of the caller covers patient.
func (e *enforcer) breakGlass(ctx context.Context, rq *enfReq, patient string) (bool, error) {
	if e.cfg.BreakGlass == nil || patient == "" || (rq.purpose != "ETREAT" && rq.purpose != "BTG") {
		return false, nil
	}
	rq.mu.Lock()
	v, ok := rq.bg[patient]
	rq.mu.Unlock()
	if ok {
		return v, nil
	}
	_, active, err := e.cfg.BreakGlass.Active(ctx, rq.p.Subject, "Patient/"+patient)
	if err != nil {
		return false, err
	}
	rq.mu.Lock()
	rq.bg[patient] = active
	rq.mu.Unlock()
	return active, nil
}

// treatment finds the caller's treatment relationship with patient: an
// active CareTeam listing the caller's FHIR user as participant, an
// Encounter they participate in that is not finished or cancelled, or an
// explicit grant. Resources that belong to no patient need none.
func (e *enforcer) treatment(ctx context.Context, rq *enfReq, patient string) (policy.Treatment, error) {
	if patient == "" {
		return policy.Treatment{ExplicitGrant: true}, nil
	}
	user := rq.p.FHIRUser
	if user == "" {
		// A machine client (SMART Backend Services, e.g. the hospital's
		// edge gateway) has no FHIR user, so no CareTeam or Encounter can
		// name it: only an explicit grant, asked for as Client/<id>,
		// relates it to a patient.
		if rq.p.ClientID == "" || e.cfg.Grants == nil {
			return policy.Treatment{}, nil
		}
		ok, err := e.cfg.Grants(ctx, "Client/"+rq.p.ClientID, patient)
		return policy.Treatment{ExplicitGrant: ok}, err
	}
	key := user + "\x00" + patient
	var t policy.Treatment
	if v, ok := e.treat.get(key + "\x00ct"); ok {
		t.CareTeam = v
	} else {
		found, err := e.exists(ctx, "CareTeam", url.Values{"patient": {"Patient/" + patient}, "participant": {user}, "status": {"active"}})
		if err != nil {
			return t, err
		}
		t.CareTeam = found
		e.treat.put(key+"\x00ct", found)
	}
	if t.CareTeam {
		return t, nil
	}
	if v, ok := e.treat.get(key + "\x00enc"); ok {
		t.EncounterParticipant = v
	} else {
		found, err := e.exists(ctx, "Encounter", url.Values{"patient": {"Patient/" + patient}, "participant": {user},
			"status": {"planned,arrived,triaged,in-progress,onleave"}})
		if err != nil {
			return t, err
		}
		t.EncounterParticipant = found
		e.treat.put(key+"\x00enc", found)
	}
	if !t.EncounterParticipant && e.cfg.Grants != nil {
		ok, err := e.cfg.Grants(ctx, user, patient)
		if err != nil {
			return t, err
		}
		t.ExplicitGrant = ok
	}
	return t, nil
}

func (e *enforcer) exists(ctx context.Context, typ string, v url.Values) (bool, error) {
	q, _, err := search.Parse(typ, v, search.ParseOptions{Strict: true})
	if err != nil {
		return false, err
	}
	q.Count, q.Total = 1, search.TotalNone
	res, err := e.inner.Search(ctx, q)
	if err != nil {
		return false, err
	}
	return len(res.Matches) > 0, nil
}

// forgetPatient drops what is cached about patient after its Consents,
// CareTeams or Encounters changed.
func (e *enforcer) forgetPatient(patient string, consents, treatment bool) {
	if consents {
		e.consents.Invalidate("Patient/" + patient)
	}
	if treatment {
		e.treat.dropSuffix("\x00" + patient)
	}
}
