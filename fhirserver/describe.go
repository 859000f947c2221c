package fhirserver

import (
	"slices"
	"sync"

	"phix/consent"
	"phix/fhir"
	"phix/fhir/search"
)

// describeResource is consent.DescribeResource restricted to the search
// parameters a consent can match on: it extracts only the code, date and
// reference parameters of the type (a plan cached per type) instead of
// every parameter, which is most of the cost of a decision, and of those
// only the fields in need. With AllFields the result is the same
// (TestDescribeMatchesConsent).
func describeResource(r *fhir.Resource, need consent.Fields) consent.Resource {
	out := consent.Resource{Type: r.Type, ID: r.ID}
	meta, _ := r.Object["meta"].(map[string]any)
	sec, _ := meta["security"].([]any)
	for _, s := range sec {
		m, _ := s.(map[string]any)
		code, _ := m["code"].(string)
		if code == "" {
			continue
		}
		sys, _ := m["system"].(string)
		out.SecurityLabels = append(out.SecurityLabels, consent.Coding{System: sys, Code: code})
	}
	prof, _ := meta["profile"].([]any)
	for _, p := range prof {
		if s, ok := p.(string); ok && s != "" {
			out.Profiles = append(out.Profiles, s)
		}
	}
	pl := planFor(r.Type)
	codes, dates, refs := pl.codes, pl.dates, pl.refs
	if need&consent.FieldCodes == 0 {
		codes = nil
	}
	if need&consent.FieldDate == 0 {
		dates = nil
	}
	if need&consent.FieldReferences == 0 {
		refs = nil
	}
	for _, p := range codes {
		for _, e := range search.ExtractParam(r, p) {
			if e.Code != "" {
				out.Codes = append(out.Codes, consent.Coding{System: e.System, Code: e.Code})
			}
		}
	}
	for _, p := range dates {
		if es := search.ExtractParam(r, p); len(es) > 0 && !es[0].Lo.IsZero() {
			out.Date = es[0].Lo
			break
		}
	}
	var seen map[string]bool
	for _, p := range refs {
		author := describeAuthorParams[p.Code]
		for _, e := range search.ExtractParam(r, p) {
			if e.RefType == "" || e.RefID == "" {
				continue
			}
			ref := e.RefType + "/" + e.RefID
			if author {
				out.Authors = append(out.Authors, ref)
			}
			if seen == nil {
				seen = map[string]bool{}
			}
			if !seen[ref] {
				seen[ref] = true
				out.References = append(out.References, ref)
			}
		}
	}
	return out
}

// The parameter lists of consent.DescribeResource.
var (
	describeDateParams   = []string{"date", "effective", "authored", "issued", "onset-date", "recorded-date", "period", "created"}
	describeAuthorParams = map[string]bool{"author": true, "requester": true, "recorder": true, "asserter": true, "performer": true}
	describeCodeParams   = map[string]bool{"code": true, "type": true, "class": true, "category": true}
)

// describePlan is the parameters describeResource extracts for a type.
type describePlan struct {
	codes, dates, refs []*search.Param
}

var describePlans sync.Map // type -> *describePlan

func planFor(typ string) *describePlan {
	if v, ok := describePlans.Load(typ); ok {
		return v.(*describePlan)
	}
	pl := &describePlan{}
	params := search.Params(typ)
	for _, p := range params {
		switch {
		case p.Type == search.TypeToken && describeCodeParams[p.Code]:
			pl.codes = append(pl.codes, p)
		case p.Type == search.TypeReference:
			pl.refs = append(pl.refs, p)
		}
	}
	for _, code := range describeDateParams {
		i := slices.IndexFunc(params, func(p *search.Param) bool { return p.Code == code && p.Type == search.TypeDate })
		if i >= 0 {
			pl.dates = append(pl.dates, params[i])
		}
	}
	describePlans.Store(typ, pl)
	return pl
}
