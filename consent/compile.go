package consent

import (
	"fmt"
	"strings"
	"time"

	"phix/fhir"
	"phix/fhir/search"
)

// MaxProvisionDepth bounds provision nesting; deeper provisions make the
// consent invalid rather than being silently cut.
const MaxProvisionDepth = 16

// MaxProvisions bounds the provisions of one consent.
const MaxProvisions = 1024

// Error is a consent that cannot be evaluated. Msg never quotes content.
type Error struct {
	Code string // "invalid-consent", "invalid-parameters", "source"
	Msg  string
}

func (e *Error) Error() string { return "consent: " + e.Code + ": " + e.Msg }

func invalid(format string, args ...any) *Error {
	return &Error{Code: "invalid-consent", Msg: fmt.Sprintf(format, args...)}
}

// Consent is a compiled Consent resource.
type Consent struct {
	ID       string
	Patient  string // "Patient/123"
	Status   string
	DateTime time.Time // zero when absent
	Root     *Provision
	// Verified is true when the consent-signature extension verified
	// against a trusted key; SigCode/SigReason say why not otherwise.
	Verified  bool
	KeyID     string
	SigReason string

	// needs lists the resource fields some provision depends on (labels,
	// codes, dataPeriod, data, profiles); when non-zero, decisions depend on
	// the individual resource and cannot be cached by resource class.
	needs Fields
}

type actorRule struct {
	Ref   string
	Roles []Coding
}

type dataRule struct {
	Meaning string
	Ref     string
}

// Provision is one compiled provision.
type Provision struct {
	Path string
	// Type is Permit or Deny as written; "" when absent (root rule).
	Type     Effect
	Start    time.Time // zero: open
	End      time.Time // zero: open
	Actors   []actorRule
	Actions  []Coding
	Labels   []Coding
	Purposes []Coding
	Classes  []Coding
	Codes    []Coding
	// DataStart/DataEnd bound dataPeriod when HasDataPeriod.
	DataStart, DataEnd time.Time
	HasDataPeriod      bool
	Data               []dataRule
	Children           []*Provision

	criteria int // number of restricting fields, for specificity
}

// Compile reads a Consent resource. keys may be nil: the consent is then
// compiled unverified (Verified false).
func Compile(r *fhir.Resource, keys KeyResolver) (*Consent, error) {
	if r == nil || r.Object == nil {
		return nil, invalid("nil resource")
	}
	if r.Type != "Consent" {
		return nil, invalid("not a Consent")
	}
	o := r.Object
	c := &Consent{ID: r.ID, Status: str(o["status"])}
	if c.ID == "" {
		return nil, invalid("the consent has no id")
	}
	c.Patient = normRef(str(mapOf(o["patient"])["reference"]))
	if c.Patient == "" {
		return nil, invalid("the consent has no patient reference")
	}
	if dt := str(o["dateTime"]); dt != "" {
		lo, _, ok := search.DateRange(dt)
		if !ok {
			return nil, invalid("dateTime is not a valid dateTime")
		}
		c.DateTime = lo
	}
	count := 0
	if p := mapOf(o["provision"]); p != nil {
		root, err := compileProvision(c, p, "provision", 1, &count)
		if err != nil {
			return nil, err
		}
		c.Root = root
	} else {
		c.Root = &Provision{Path: "provision"}
	}
	if c.Root.Type == "" {
		c.Root.Type = policyEffect(o)
	}
	if keys != nil {
		c.KeyID, c.SigReason = verify(r, keys)
		c.Verified = c.SigReason == ""
	} else {
		c.SigReason = "no-key-resolver"
	}
	return c, nil
}

// policyEffect reads the base rule of a root provision without a type from
// policyRule (R4: the root rule carries no type; the policy is the base).
func policyEffect(o map[string]any) Effect {
	for _, cd := range codings(o["policyRule"]) {
		switch cd.Code {
		case "OPTIN", "OPTINR":
			return Permit
		case "OPTOUT", "OPTOUTE":
			return Deny
		}
	}
	return NotApplicable
}

func compileProvision(c *Consent, o map[string]any, path string, depth int, count *int) (*Provision, error) {
	if depth > MaxProvisionDepth {
		return nil, invalid("provisions nested deeper than %d", MaxProvisionDepth)
	}
	if *count++; *count > MaxProvisions {
		return nil, invalid("more than %d provisions", MaxProvisions)
	}
	p := &Provision{Path: path}
	switch t := str(o["type"]); t {
	case "permit":
		p.Type = Permit
	case "deny":
		p.Type = Deny
	case "":
	default:
		return nil, invalid("provision type must be permit or deny")
	}
	var err error
	if per := mapOf(o["period"]); per != nil {
		if p.Start, p.End, err = period(per); err != nil {
			return nil, err
		}
		p.criteria++
	}
	if per := mapOf(o["dataPeriod"]); per != nil {
		if p.DataStart, p.DataEnd, err = period(per); err != nil {
			return nil, err
		}
		p.HasDataPeriod = true
		p.criteria++
		c.needs |= FieldDate
	}
	for _, a := range slice(o["actor"]) {
		am := mapOf(a)
		ar := actorRule{Ref: normRef(str(mapOf(am["reference"])["reference"])), Roles: codings(am["role"])}
		if ar.Ref == "" && len(ar.Roles) == 0 {
			return nil, invalid("an actor has neither reference nor role")
		}
		p.Actors = append(p.Actors, ar)
	}
	for _, a := range slice(o["action"]) {
		p.Actions = append(p.Actions, codings(a)...)
	}
	for _, l := range slice(o["securityLabel"]) {
		p.Labels = append(p.Labels, coding(mapOf(l)))
	}
	for _, l := range slice(o["purpose"]) {
		p.Purposes = append(p.Purposes, coding(mapOf(l)))
	}
	for _, l := range slice(o["class"]) {
		cd := coding(mapOf(l))
		p.Classes = append(p.Classes, cd)
		if !fhir.IsResourceType(cd.Code) {
			c.needs |= FieldProfiles // a profile or document type
		}
	}
	for _, cc := range slice(o["code"]) {
		p.Codes = append(p.Codes, codings(cc)...)
	}
	for _, d := range slice(o["data"]) {
		dm := mapOf(d)
		dr := dataRule{Meaning: str(dm["meaning"]), Ref: normRef(str(mapOf(dm["reference"])["reference"]))}
		switch dr.Meaning {
		case "instance", "related", "dependents", "authoredby":
		default:
			return nil, invalid("data meaning must be instance, related, dependents or authoredby")
		}
		if dr.Ref == "" {
			return nil, invalid("a data rule has no reference")
		}
		if !(dr.Ref == c.Patient+"/*" && dr.Meaning == "related") {
			c.needs |= FieldReferences
		}
		p.Data = append(p.Data, dr)
	}
	for _, n := range []int{len(p.Actors), len(p.Actions), len(p.Labels), len(p.Purposes), len(p.Classes), len(p.Codes), len(p.Data)} {
		if n > 0 {
			p.criteria++
		}
	}
	if len(p.Labels) > 0 {
		c.needs |= FieldLabels
	}
	if len(p.Codes) > 0 {
		c.needs |= FieldCodes
	}
	for i, ch := range slice(o["provision"]) {
		cm := mapOf(ch)
		if cm == nil {
			return nil, invalid("a nested provision is not an object")
		}
		child, err := compileProvision(c, cm, fmt.Sprintf("%s.provision[%d]", path, i), depth+1, count)
		if err != nil {
			return nil, err
		}
		p.Children = append(p.Children, child)
	}
	return p, nil
}

func period(o map[string]any) (start, end time.Time, err error) {
	if s := str(o["start"]); s != "" {
		lo, _, ok := search.DateRange(s)
		if !ok {
			return start, end, invalid("period.start is not a valid dateTime")
		}
		start = lo
	}
	if s := str(o["end"]); s != "" {
		_, hi, ok := search.DateRange(s)
		if !ok {
			return start, end, invalid("period.end is not a valid dateTime")
		}
		end = hi
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return start, end, invalid("period ends before it starts")
	}
	return start, end, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func slice(v any) []any {
	s, _ := v.([]any)
	return s
}

func coding(m map[string]any) Coding {
	return Coding{System: str(m["system"]), Code: str(m["code"])}
}

// codings reads the codings of a CodeableConcept.
func codings(v any) []Coding {
	var out []Coding
	for _, c := range slice(mapOf(v)["coding"]) {
		if cd := coding(mapOf(c)); cd.Code != "" {
			out = append(out, cd)
		}
	}
	return out
}

func refKey(typ, id string) string {
	if typ == "" || id == "" {
		return ""
	}
	return typ + "/" + id
}

// normRef strips a base URL and a version from a reference so that
// "https://h/fhir/Patient/1/_history/2" compares as "Patient/1".
func normRef(ref string) string {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	// The last two segments, without splitting: this runs for every
	// decision, and "Type/id" (the usual form) is returned as is.
	last := strings.LastIndexByte(ref, '/')
	if last < 0 {
		return ref
	}
	prev := strings.LastIndexByte(ref[:last], '/')
	if prev < 0 || strings.HasSuffix(ref, "/*") {
		return ref
	}
	return ref[prev+1:]
}
