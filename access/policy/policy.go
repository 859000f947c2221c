// Package policy decides who may do what to which data, with cedar-go over
// policy files an operator can read and change (access/policy/default holds
// the shipped set). Every decision carries its reasons: the @id of each
// policy that determined it, PHI-free by construction (policy ids are
// operator-written names, and a denial never echoes request data).
package policy

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"

	"phix/access/roles"
	"phix/errcode"
)

//go:embed default/*.cedar
var defaultFS embed.FS

// Actions the node asks about.
const (
	ActionRead        = "read"
	ActionSearch      = "search"
	ActionCreate      = "create"
	ActionUpdate      = "update"
	ActionDelete      = "delete"
	ActionBreakGlass  = "break-glass"
	ActionAuditRead   = "audit-read"
	ActionManagePol   = "manage-policy"
	ActionManageSys   = "manage-system"
	ActionApproveKeys = "approve-key-operation"
)

var actions = []string{ActionRead, ActionSearch, ActionCreate, ActionUpdate, ActionDelete, ActionBreakGlass,
	ActionAuditRead, ActionManagePol, ActionManageSys, ActionApproveKeys}

// Purposes of use accepted (HL7 v3 PurposeOfUse); any other is refused
// before policy evaluation.
var Purposes = []string{"TREAT", "ETREAT", "BTG", "HOPERAT", "HRESCH", "PUBHLTH", "HPAYMT"}

// Data classes.
const (
	ClassClinical     = "clinical"
	ClassDemographic  = "demographic"
	ClassConsent      = "consent"
	ClassDeidentified = "deidentified"
	ClassAudit        = "audit"
	ClassAdmin        = "admin"
)

// DataClass is the default class of a FHIR resource type.
func DataClass(resourceType string) string {
	switch resourceType {
	case "Patient", "RelatedPerson", "Person", "Practitioner", "PractitionerRole", "Organization", "Location":
		return ClassDemographic
	case "Consent":
		return ClassConsent
	case "AuditEvent", "Audit":
		return ClassAudit
	}
	return ClassClinical
}

// Principal is the caller.
type Principal struct {
	ID    string // a non-PHI subject id
	Roles []roles.Role
	Org   string
}

// Resource is what is accessed.
type Resource struct {
	Type      string // FHIR type, or Audit/Policy/Key/System
	DataClass string // "" = DataClass(Type)
	Org       string // owning organisation ("" = this node's)
	Labels    []string
}

// Treatment is how a treatment relationship is established.
type Treatment struct {
	CareTeam             bool
	EncounterParticipant bool
	ExplicitGrant        bool
}

func (t Treatment) any() bool { return t.CareTeam || t.EncounterParticipant || t.ExplicitGrant }

func (t Treatment) basis() string {
	switch {
	case t.CareTeam:
		return "careteam"
	case t.EncounterParticipant:
		return "encounter"
	case t.ExplicitGrant:
		return "grant"
	}
	return ""
}

// Input is one question.
type Input struct {
	Principal Principal
	Action    string
	Resource  Resource
	Purpose   string
	Treatment Treatment
	// BreakGlass: an active break-glass grant covers this access.
	BreakGlass bool
	// Consent is the consent engine's effect: "permit", "deny",
	// "not-applicable" or "" (not evaluated: "unknown").
	Consent string
	Time    time.Time // zero: now
}

// Decision is the answer.
type Decision struct {
	Allow bool
	// Reasons are the @id of the policies that determined the decision:
	// the permits when allowed, the forbids when denied, "default-deny"
	// when nothing permits, or an input check's name.
	Reasons []string
	// Code is the PHI-60xx code of a denial: the first forbid's @code,
	// PHI-6011 when an eligible caller would be allowed under break-glass,
	// PHI-6017 otherwise.
	Code errcode.Code
}

// Err renders a denial as an *errcode.Error whose detail lists the reasons
// (policy ids only). nil when allowed.
func (d Decision) Err() error {
	if d.Allow {
		return nil
	}
	return errcode.New(d.Code, "denied by policy: %s", strings.Join(d.Reasons, ", "))
}

// Engine evaluates a policy set that can be swapped at run time.
type Engine struct {
	dir string
	mu  sync.RWMutex
	// byAction holds, per action, the policies whose action scope can
	// match it: a policy whose scope excludes the action evaluates to
	// false without touching its conditions, so skipping it changes
	// nothing but the time spent.
	byAction map[string]policySlice
	// codes maps forbid policy ids to their @code.
	codes map[cedar.PolicyID]errcode.Code
	ids   []string
	stamp string // fingerprint of the directory at the last load
	// Now is the clock for zero Input.Time (default time.Now); Location
	// the time zone of context.hour/weekday (default time.Local).
	Now      func() time.Time
	Location *time.Location
}

// Default returns an Engine over the embedded default policy set.
func Default() (*Engine, error) {
	sub, _ := fs.Sub(defaultFS, "default")
	e := &Engine{}
	if err := e.load(sub); err != nil {
		return nil, err
	}
	return e, nil
}

// WriteDefault copies the shipped policy files into dir when dir has no
// .cedar file yet (first start); an operator edits them from there.
func WriteDefault(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	have, _ := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if len(have) > 0 {
		return nil
	}
	entries, _ := defaultFS.ReadDir("default")
	for _, e := range entries {
		b, err := defaultFS.ReadFile("default/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Load returns an Engine over the *.cedar files of dir.
func Load(dir string) (*Engine, error) {
	e := &Engine{dir: dir}
	if err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload re-reads the directory. On any error the running policy set stays.
func (e *Engine) Reload() error {
	if e.dir == "" {
		return errors.New("policy: engine has no directory")
	}
	stamp, err := fingerprint(e.dir)
	if err != nil {
		return err
	}
	if err := e.load(os.DirFS(e.dir)); err != nil {
		return err
	}
	e.mu.Lock()
	e.stamp = stamp
	e.mu.Unlock()
	return nil
}

// PolicyIDs lists the loaded policies' ids.
func (e *Engine) PolicyIDs() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.ids)
}

func (e *Engine) load(fsys fs.FS) error {
	names, err := fs.Glob(fsys, "*.cedar")
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("policy: no .cedar file")
	}
	sort.Strings(names)
	ps := cedar.NewPolicySet()
	codes := map[cedar.PolicyID]errcode.Code{}
	byAction := map[string]policySlice{}
	var ids []string
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		list, err := cedar.NewPolicyListFromBytes(name, b)
		if err != nil {
			return fmt.Errorf("policy: %s: %w", name, err)
		}
		for i, p := range list {
			ann := p.Annotations()
			id := string(ann["id"])
			if id == "" {
				return fmt.Errorf("policy: %s: policy %d has no @id", name, i+1)
			}
			if !ps.Add(cedar.PolicyID(id), p) {
				return fmt.Errorf("policy: %s: @id %q used twice", name, id)
			}
			ids = append(ids, id)
			// Indexed by action, the action scope is already decided: the
			// evaluated copy drops it (cedar's "action in [...]" builds a
			// set per evaluation, a third of the decision's time).
			fast := *(*xast.Policy)(p.AST())
			fast.Action = xast.ScopeTypeAll{}
			fp := cedar.NewPolicyFromAST((*ast.Policy)(&fast))
			for _, a := range actionsOf(p) {
				byAction[a] = append(byAction[a], idPolicy{cedar.PolicyID(id), fp})
			}
			if c, ok := ann["code"]; ok {
				if _, known := errcode.Lookup(errcode.Code(c)); !known {
					return fmt.Errorf("policy: %s: @id %q has unknown @code", name, id)
				}
				codes[cedar.PolicyID(id)] = errcode.Code(c)
			}
		}
	}
	e.mu.Lock()
	e.byAction, e.codes, e.ids = byAction, codes, ids
	e.mu.Unlock()
	return nil
}

type idPolicy struct {
	id cedar.PolicyID
	p  *cedar.Policy
}

// policySlice is a cedar.PolicyIterator over a fixed list.
type policySlice []idPolicy

func (s policySlice) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, x := range s {
			if !yield(x.id, x.p) {
				return
			}
		}
	}
}

// actionsOf lists the known actions a policy's action scope can match.
func actionsOf(p *cedar.Policy) []string {
	var uids []cedar.EntityUID
	switch sc := (*xast.Policy)(p.AST()).Action.(type) {
	case xast.ScopeTypeEq:
		uids = []cedar.EntityUID{sc.Entity}
	case xast.ScopeTypeIn:
		uids = []cedar.EntityUID{sc.Entity}
	case xast.ScopeTypeInSet:
		uids = sc.Entities
	default: // all actions
		return actions
	}
	var out []string
	for _, u := range uids {
		if u.Type == typeAction && slices.Contains(actions, string(u.ID)) {
			out = append(out, string(u.ID))
		}
	}
	return out
}

// fingerprint names, sizes and modification times of the .cedar files.
func fingerprint(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		st, err := os.Stat(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %d %d\n", filepath.Base(n), st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

// Changed reports whether the directory differs from the last load.
func (e *Engine) Changed() bool {
	if e.dir == "" {
		return false
	}
	s, err := fingerprint(e.dir)
	e.mu.RLock()
	defer e.mu.RUnlock()
	return err == nil && s != e.stamp
}

var (
	typeUser     = cedar.EntityType("Phix::User")
	typeAction   = cedar.EntityType("Phix::Action")
	typeResource = cedar.EntityType("Phix::Resource")
	actionUIDs   = func() map[string]cedar.EntityUID {
		m := map[string]cedar.EntityUID{}
		for _, a := range actions {
			m[a] = cedar.NewEntityUID(typeAction, cedar.String(a))
		}
		return m
	}()
)

// Decide answers one question. Inputs that are malformed (unknown action or
// purpose, roles breaking separation of duties) are denied before any policy
// runs, with the check's name as the reason.
func (e *Engine) Decide(in Input) Decision {
	if _, ok := actionUIDs[in.Action]; !ok {
		return Decision{Reasons: []string{"unknown-action"}, Code: errcode.ProviderNotAuthorized}
	}
	if !slices.Contains(Purposes, in.Purpose) {
		return Decision{Reasons: []string{"purpose-not-allowed"}, Code: errcode.ProviderNotAuthorized}
	}
	if err := roles.Check(in.Principal.Roles); err != nil {
		return Decision{Reasons: []string{"separation-of-duties"}, Code: errcode.ProviderNotAuthorized}
	}
	d := e.decide(in)
	if d.Allow || in.BreakGlass || (in.Action != ActionRead && in.Action != ActionSearch) {
		return d
	}
	// Would break-glass open it? Only for a caller the policy lets break
	// the glass: then the answer is PHI-6011, not a plain denial.
	bg := in
	bg.Action, bg.Purpose = ActionBreakGlass, "ETREAT"
	if e.decide(bg).Allow {
		bg.Action, bg.BreakGlass = in.Action, true
		if e.decide(bg).Allow {
			d.Code = errcode.BreakGlassRequired
			d.Reasons = append(d.Reasons, "break-glass-available")
		}
	}
	return d
}

func (e *Engine) decide(in Input) Decision {
	e.mu.RLock()
	ps, codes := e.byAction[in.Action], e.codes
	e.mu.RUnlock()
	now := in.Time
	if now.IsZero() {
		if e.Now != nil {
			now = e.Now()
		} else {
			now = time.Now()
		}
	}
	loc := e.Location
	if loc == nil {
		loc = time.Local
	}
	now = now.In(loc)
	class := in.Resource.DataClass
	if class == "" {
		class = DataClass(in.Resource.Type)
	}
	consent := in.Consent
	if consent == "" {
		consent = "unknown"
	}
	roleVals := make([]cedar.Value, len(in.Principal.Roles))
	for i, r := range in.Principal.Roles {
		roleVals[i] = cedar.String(r)
	}
	labelVals := make([]cedar.Value, len(in.Resource.Labels))
	for i, l := range in.Resource.Labels {
		labelVals[i] = cedar.String(l)
	}
	pUID := cedar.NewEntityUID(typeUser, cedar.String(in.Principal.ID))
	rUID := cedar.NewEntityUID(typeResource, cedar.String(in.Resource.Type))
	entities := &twoEntities{
		p: cedar.Entity{UID: pUID, Attributes: cedar.NewRecord(cedar.RecordMap{
			"roles": cedar.NewSet(roleVals...),
			"org":   cedar.String(in.Principal.Org),
		})},
		r: cedar.Entity{UID: rUID, Attributes: cedar.NewRecord(cedar.RecordMap{
			"type":      cedar.String(in.Resource.Type),
			"dataClass": cedar.String(class),
			"org":       cedar.String(in.Resource.Org),
			"labels":    cedar.NewSet(labelVals...),
		})},
	}
	req := cedar.Request{
		Principal: pUID,
		Action:    actionUIDs[in.Action],
		Resource:  rUID,
		Context: cedar.NewRecord(cedar.RecordMap{
			"purpose":        cedar.String(in.Purpose),
			"treatment":      cedar.Boolean(in.Treatment.any()),
			"treatmentBasis": cedar.String(in.Treatment.basis()),
			"breakGlass":     cedar.Boolean(in.BreakGlass),
			"consent":        cedar.String(consent),
			"hour":           cedar.Long(now.Hour()),
			"weekday":        cedar.Long(now.Weekday()),
		}),
	}
	dec, diag := cedar.Authorize(ps, entities, req)
	out := Decision{Allow: dec == cedar.Allow}
	for _, r := range diag.Reasons {
		out.Reasons = append(out.Reasons, string(r.PolicyID))
	}
	sort.Strings(out.Reasons)
	if out.Allow {
		return out
	}
	out.Code = errcode.ProviderNotAuthorized
	for _, id := range out.Reasons {
		if c, ok := codes[cedar.PolicyID(id)]; ok {
			out.Code = c
			break
		}
	}
	if len(out.Reasons) == 0 {
		out.Reasons = []string{"default-deny"}
	}
	// A policy that errors (say, an attribute missing) is skipped by
	// cedar; it is named so an operator sees it.
	for _, e := range diag.Errors {
		out.Reasons = append(out.Reasons, "error:"+string(e.PolicyID))
	}
	return out
}

// twoEntities is the request's entity store: the principal and the
// resource (cheaper than building an EntityMap per decision).
type twoEntities struct{ p, r cedar.Entity }

func (t *twoEntities) Get(uid cedar.EntityUID) (cedar.Entity, bool) {
	switch uid {
	case t.p.UID:
		return t.p, true
	case t.r.UID:
		return t.r, true
	}
	return cedar.Entity{}, false
}
