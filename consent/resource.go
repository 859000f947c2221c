package consent

import (
	"phix/fhir"
	"phix/fhir/search"
)

// dateParams are the search parameters taken as a resource's clinical date,
// in order of preference.
var dateParams = []string{"date", "effective", "authored", "issued", "onset-date", "recorded-date", "period", "created"}

// authorParams are the reference parameters naming who authored a resource.
var authorParams = map[string]bool{"author": true, "requester": true, "recorder": true, "asserter": true, "performer": true}

// codeParams are the token parameters taken as a resource's codes.
var codeParams = map[string]bool{"code": true, "type": true, "class": true, "category": true}

// DescribeResource fills a Resource from r using the search extractor:
// meta.security and meta.profile, codes (code, type, class, category
// parameters), the first clinical date, authors, and every reference r
// holds. ReferencedBy is left to the caller.
func DescribeResource(r *fhir.Resource) Resource {
	if r == nil {
		return Resource{}
	}
	out := Resource{Type: r.Type, ID: r.ID}
	meta := mapOf(r.Object["meta"])
	for _, s := range slice(meta["security"]) {
		if cd := coding(mapOf(s)); cd.Code != "" {
			out.SecurityLabels = append(out.SecurityLabels, cd)
		}
	}
	for _, p := range slice(meta["profile"]) {
		if s := str(p); s != "" {
			out.Profiles = append(out.Profiles, s)
		}
	}
	dates := map[string]search.Entry{}
	seen := map[string]bool{}
	for _, e := range search.Extract(r) {
		switch e.Type {
		case search.TypeToken:
			if codeParams[e.Param] && e.Code != "" {
				out.Codes = append(out.Codes, Coding{System: e.System, Code: e.Code})
			}
		case search.TypeDate:
			if _, ok := dates[e.Param]; !ok {
				dates[e.Param] = e
			}
		case search.TypeReference:
			ref := refKey(e.RefType, e.RefID)
			if ref == "" {
				continue
			}
			if authorParams[e.Param] {
				out.Authors = append(out.Authors, ref)
			}
			if !seen[ref] {
				seen[ref] = true
				out.References = append(out.References, ref)
			}
		}
	}
	for _, p := range dateParams {
		if e, ok := dates[p]; ok && !e.Lo.IsZero() {
			out.Date = e.Lo
			break
		}
	}
	return out
}
