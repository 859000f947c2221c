package consent

import (
	"time"
)

const (
	confidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	resourceTypesSystem   = "http://hl7.org/fhir/resource-types"
)

// confidentiality ranks v3 Confidentiality codes: a provision label of "R"
// covers resources labelled R or lower (R4 Consent.provision.securityLabel).
var confidentiality = map[string]int{"U": 1, "L": 2, "M": 3, "N": 4, "R": 5, "V": 6}

// result is the outcome of one consent for one request.
type result struct {
	effect      Effect
	path        string
	spec        int
	end         time.Time
	obligations []Obligation
}

// evaluate applies one consent. ok is false when the consent does not apply
// (not active, outside its time, root rule not matching, or no rule with an
// effect matched). It does not look at the signature.
func (c *Consent) evaluate(req *Request, now time.Time) (result, bool) {
	if c.Status != "active" || c.Root == nil {
		return result{}, false
	}
	if !c.DateTime.IsZero() && now.Before(c.DateTime) {
		return result{}, false
	}
	if req.Patient != "" && c.Patient != req.Patient {
		return result{}, false
	}
	r, ok := c.provision(c.Root, c.Root.Type, req, now, 0, time.Time{})
	if !ok || r.effect == NotApplicable {
		return result{}, false
	}
	return r, true
}

// provision evaluates p with effect eff (its own type, or the default
// derived from its parent). R4: nested provisions are exceptions to their
// parent; the deepest matching rule decides, and among matching siblings a
// deny overrides a permit.
func (c *Consent) provision(p *Provision, eff Effect, req *Request, now time.Time, spec int, end time.Time) (result, bool) {
	if !p.matches(c, req, now, eff, false) {
		return result{}, false
	}
	spec += p.criteria
	if !p.End.IsZero() && (end.IsZero() || p.End.Before(end)) {
		end = p.End
	}
	best := result{effect: eff, path: p.Path, spec: spec, end: end}
	found := false
	for _, ch := range p.Children {
		ceff := ch.Type
		if ceff == "" {
			ceff = opposite(eff)
		}
		r, ok := c.provision(ch, ceff, req, now, spec, end)
		if !ok || r.effect == NotApplicable {
			continue
		}
		if !found || (r.effect == Deny && best.effect != Deny) || (r.effect == best.effect && r.spec > best.spec) {
			best, found = r, true
		}
	}
	if !found && eff == Permit {
		// Deny exceptions that differ only by security label become
		// redaction obligations on the permitted resource.
		for _, ch := range p.Children {
			if len(ch.Labels) > 0 && (ch.Type == Deny || ch.Type == "") && ch.matches(c, req, now, Deny, true) {
				for _, l := range ch.Labels {
					best.obligations = append(best.obligations, Obligation{Kind: "redact", SecurityLabel: l})
				}
			}
		}
	}
	return best, true
}

func opposite(e Effect) Effect {
	switch e {
	case Permit:
		return Deny
	case Deny:
		return Permit
	}
	// Under a root without a base effect, an untyped exception restricts.
	return Deny
}

// matches tests every field of the provision. Fields the request leaves
// unknown match a deny rule and fail a permit rule.
func (p *Provision) matches(c *Consent, req *Request, now time.Time, eff Effect, ignoreLabels bool) bool {
	unknown := eff == Deny
	if !p.Start.IsZero() && now.Before(p.Start) || !p.End.IsZero() && now.After(p.End) {
		return false
	}
	if len(p.Actors) > 0 && !matchActor(p.Actors, &req.Actor, unknown) {
		return false
	}
	if len(p.Actions) > 0 && !matchCode(p.Actions, Coding{Code: req.Action}, unknown) {
		return false
	}
	if len(p.Purposes) > 0 && !matchCode(p.Purposes, req.Purpose, unknown) {
		return false
	}
	res := &req.Resource
	// Labels and codes of a described resource are known in full: none
	// means none. Only an undescribed resource leaves them unknown.
	described := res.Type != ""
	if !ignoreLabels && len(p.Labels) > 0 && !matchLabels(p.Labels, res.SecurityLabels, unknown && !described) {
		return false
	}
	if len(p.Classes) > 0 && !matchClass(p.Classes, res, unknown) {
		return false
	}
	if len(p.Codes) > 0 && !matchCodes(p.Codes, res.Codes, unknown && !described) {
		return false
	}
	if p.HasDataPeriod {
		if res.Date.IsZero() {
			if !unknown {
				return false
			}
		} else if !p.DataStart.IsZero() && res.Date.Before(p.DataStart) || !p.DataEnd.IsZero() && res.Date.After(p.DataEnd) {
			return false
		}
	}
	if len(p.Data) > 0 && !matchData(c, p.Data, req, unknown) {
		return false
	}
	return true
}

// matchActor: a rule with a reference matches that actor; a rule with only
// a role matches an actor holding the role. R4's actor.role is how the actor
// takes part, so a rule naming both is decided by the reference.
func matchActor(rules []actorRule, a *Actor, unknown bool) bool {
	if a.Reference == "" && len(a.Roles) == 0 {
		return unknown
	}
	for _, r := range rules {
		if r.Ref != "" {
			if r.Ref == a.Reference {
				return true
			}
			continue
		}
		for _, want := range r.Roles {
			for _, have := range a.Roles {
				if codingEq(want, have) {
					return true
				}
			}
		}
	}
	return false
}

func codingEq(want, have Coding) bool {
	return want.Code == have.Code && (want.System == "" || have.System == "" || want.System == have.System)
}

func matchCode(rules []Coding, have Coding, unknown bool) bool {
	if have.Code == "" {
		return unknown
	}
	for _, r := range rules {
		if codingEq(r, have) {
			return true
		}
	}
	return false
}

func matchCodes(rules, have []Coding, unknown bool) bool {
	if len(have) == 0 {
		return unknown
	}
	for _, h := range have {
		if matchCode(rules, h, false) {
			return true
		}
	}
	return false
}

func matchLabels(rules, have []Coding, unknown bool) bool {
	if len(have) == 0 {
		return unknown
	}
	for _, r := range rules {
		rank, isConf := confidentiality[r.Code]
		isConf = isConf && (r.System == confidentialitySystem || r.System == "")
		for _, h := range have {
			if isConf && (h.System == confidentialitySystem || h.System == "") {
				if hr, ok := confidentiality[h.Code]; ok && hr <= rank {
					return true
				}
				continue
			}
			if codingEq(r, h) {
				return true
			}
		}
	}
	return false
}

func matchClass(rules []Coding, res *Resource, unknown bool) bool {
	if res.Type == "" {
		return unknown
	}
	for _, r := range rules {
		if r.Code == res.Type && (r.System == "" || r.System == resourceTypesSystem) {
			return true
		}
		for _, p := range res.Profiles {
			if r.Code == p {
				return true
			}
		}
	}
	return false
}

// matchData follows R4 ConsentDataMeaning: instance is the resource itself;
// related is it and the instances it refers to; dependents is it and the
// instances that refer to it; authoredby is what it authored. Seed 002's
// "Patient/x/*" with related is the whole compartment of the consent's
// patient.
func matchData(c *Consent, rules []dataRule, req *Request, unknown bool) bool {
	res := &req.Resource
	self := refKey(res.Type, res.ID)
	for _, d := range rules {
		if d.Meaning == "related" && d.Ref == c.Patient+"/*" {
			return true
		}
		if self == "" {
			if unknown {
				return true
			}
			continue
		}
		base := d.Ref
		if n := len(base); n > 2 && base[n-2:] == "/*" {
			base = base[:n-2]
			if self == base || contains(res.References, base) {
				return true
			}
			continue
		}
		switch d.Meaning {
		case "instance":
			if self == base {
				return true
			}
		case "related":
			if self == base || contains(res.ReferencedBy, base) {
				return true
			}
		case "dependents":
			if self == base || contains(res.References, base) {
				return true
			}
		case "authoredby":
			if contains(res.Authors, base) {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
