package fhirserver

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"phix/access/policy"
	"phix/access/scopes"
	"phix/consent"
	"phix/errcode"
	"phix/fhir"
	"phix/fhir/search"
	"phix/store"
)

// ---------------------------------------------------------------- records

// filterRecord decides one stored record for the caller: nil, nil when
// allowed (rec possibly redacted), a denial otherwise.
func (e *enforcer) filterRecord(ctx context.Context, rq *enfReq, action string, rec *store.Record) (*store.Record, *Error, error) {
	if rec == nil || rec.Deleted || len(rec.Body) == 0 {
		// A deletion or erased version has no content: the type decides.
		if !scopeAllowsType(rq.p, action, rec) {
			return nil, denial(errcode.MinimumNecessaryViolated, []string{"smart-scope"}), nil
		}
		return rec, nil, nil
	}
	lr := &lazyResource{body: rec.Body}
	key := rec.Type + "/" + rec.ID + "/" + strconv.FormatInt(rec.Version, 10) // as enforcePrime
	cached, ok := e.desc.get(key)
	if !ok {
		res, err := lr.brief(rec.Type)
		if err != nil {
			return nil, nil, err
		}
		cached = describe(res, 0)
	}
	sub, err := e.complete(ctx, action, cached, lr)
	if err != nil {
		return nil, nil, err
	}
	if !ok || sub != cached {
		e.desc.put(key, sub)
	}
	obl, deny, err := e.decide(ctx, rq, action, sub, lr)
	if err != nil || deny != nil {
		return nil, deny, err
	}
	if len(obl) == 0 || !bytes.Contains(rec.Body, []byte(inlineLabelURL)) {
		return rec, nil, nil // nothing carries an inline label: nothing to redact
	}
	res, err := fhir.Parse(rec.Body, fhir.ParseOptions{}) // a copy to redact
	if err != nil {
		return nil, nil, err
	}
	if !redact(res.Object, obl) {
		return rec, nil, nil
	}
	body, err := fhir.Marshal(res)
	if err != nil {
		return nil, nil, err
	}
	c := *rec
	c.Body = body
	return &c, nil, nil
}

// enforcePrime records the description of a version the PHI layer has just
// parsed to open it, when the request will be filtered: the enforcement
// layer then need not parse the body again.
func (s *Server) enforcePrime(ctx context.Context, rec *store.Record, r *fhir.Resource) {
	if s.enf == nil || enfReqFrom(ctx) == nil {
		return
	}
	key := rec.Type + "/" + rec.ID + "/" + strconv.FormatInt(rec.Version, 10)
	if _, ok := s.enf.desc.get(key); ok {
		return
	}
	sub := describe(r, 0)
	if sub.patient != "" {
		// Describe now what the patient's consents read: the parsed
		// resource is at hand here, and the filter would parse again.
		// Not loading them: this runs inside the store read that loads
		// consents, so a load here would recurse; unknown, describe all.
		need, ok := s.enf.consents.CachedNeeds("Patient/" + sub.patient)
		if !ok {
			need = consent.AllFields
		}
		if need&^sub.known != 0 {
			sub = sub.with(r, need)
		}
	}
	s.enf.desc.put(key, sub)
}

func scopeAllowsType(p *Principal, action string, rec *store.Record) bool {
	if p.Scopes == nil || rec == nil {
		return true
	}
	in := interactionOf[action]
	return p.Scopes.Allows(in, rec.Type, scopes.User) || p.Scopes.Allows(in, rec.Type, scopes.System) ||
		(p.Patient != "" && p.Scopes.Allows(in, rec.Type, scopes.Patient))
}

// inlineLabelURL is the DS4P inline security label extension.
const inlineLabelURL = "http://hl7.org/fhir/uv/security-label-ds4p/StructureDefinition/extension-inline-sec-label"

// redact applies the consent's redact obligations: every element (object)
// carrying an inline security label named by an obligation is removed.
// It reports whether anything was removed.
func redact(obj map[string]any, obl []consent.Obligation) bool {
	removed := false
	for k, v := range obj {
		nv, drop, rm := redactValue(v, obl)
		removed = removed || rm
		if drop {
			delete(obj, k)
			removed = true
		} else if rm {
			obj[k] = nv
		}
	}
	return removed
}

func redactValue(v any, obl []consent.Obligation) (any, bool, bool) {
	switch t := v.(type) {
	case map[string]any:
		if carriesLabel(t, obl) {
			return nil, true, true
		}
		return t, false, redact(t, obl)
	case []any:
		out := t[:0:0]
		rm := false
		for _, x := range t {
			nx, drop, r := redactValue(x, obl)
			rm = rm || r
			if !drop {
				out = append(out, nx)
			}
		}
		return out, false, rm
	}
	return v, false, false
}

func carriesLabel(m map[string]any, obl []consent.Obligation) bool {
	exts, _ := m["extension"].([]any)
	for _, x := range exts {
		ext, _ := x.(map[string]any)
		if ext == nil || ext["url"] != inlineLabelURL {
			continue
		}
		c, _ := ext["valueCoding"].(map[string]any)
		code, _ := c["code"].(string)
		sys, _ := c["system"].(string)
		for _, o := range obl {
			if o.Kind == "redact" && o.SecurityLabel.Code == code && (o.SecurityLabel.System == "" || sys == "" || o.SecurityLabel.System == sys) {
				return true
			}
		}
	}
	return false
}

// ---------------------------------------------------------------- store

// enforcedStore filters what the top-level Reader returns (read, vread,
// history, search with includes) through the decision point of the
// request's caller. Transactions are not filtered: writes are decided in
// create/update/remove, and their reads serve the server itself.
type enforcedStore struct {
	store.Store
	e *enforcer
}

func (es *enforcedStore) Read(ctx context.Context, typ, id string) (*store.Record, error) {
	rec, err := es.Store.Read(ctx, typ, id)
	rq := enfReqFrom(ctx)
	if err != nil || rq == nil {
		return rec, err
	}
	out, deny, err := es.e.filterRecord(ctx, rq, policy.ActionRead, rec)
	if err != nil {
		return nil, storeError(err)
	}
	if deny != nil {
		return nil, deny
	}
	return out, nil
}

func (es *enforcedStore) VRead(ctx context.Context, typ, id string, version int64) (*store.Record, error) {
	rec, err := es.Store.VRead(ctx, typ, id, version)
	rq := enfReqFrom(ctx)
	if err != nil || rq == nil {
		return rec, err
	}
	out, deny, err := es.e.filterRecord(ctx, rq, policy.ActionRead, rec)
	if err != nil {
		return nil, storeError(err)
	}
	if deny != nil {
		return nil, deny
	}
	return out, nil
}

// History scans up to MaxScan versions, keeps the permitted ones and pages
// over them, so the total and the links count only what the caller may see.
func (es *enforcedStore) History(ctx context.Context, opts store.HistoryOptions) ([]*store.Record, int, error) {
	rq := enfReqFrom(ctx)
	if rq == nil {
		return es.Store.History(ctx, opts)
	}
	o := opts
	o.Offset, o.Count = 0, es.e.maxScan+1
	recs, _, err := es.Store.History(ctx, o)
	if err != nil {
		return nil, 0, err
	}
	if len(recs) > es.e.maxScan {
		return nil, 0, errorf(CodeTooCostly, "the history has more versions than the enforcement scan allows; use _since or _count on an instance")
	}
	kept := make([]*store.Record, 0, len(recs))
	var first *Error
	for _, rec := range recs {
		out, deny, err := es.e.filterRecord(ctx, rq, policy.ActionRead, rec)
		if err != nil {
			return nil, 0, storeError(err)
		}
		if deny != nil {
			if first == nil {
				first = deny
			}
			continue
		}
		kept = append(kept, out)
	}
	if opts.ID != "" && len(kept) == 0 && first != nil {
		return nil, 0, first
	}
	return pageOf(kept, opts.Offset, opts.Count), len(kept), nil
}

func pageOf(recs []*store.Record, offset, count int) []*store.Record {
	if count < 0 || offset >= len(recs) {
		return nil
	}
	end := len(recs)
	if count > 0 && offset+count < end {
		end = offset + count
	}
	return recs[offset:end]
}

// Search runs the query without paging (scope restrictions pushed into
// it), decides every match up to MaxScan, computes the exact total of the
// permitted ones and returns the requested page; _include/_revinclude run
// for that page only and their results are decided as well.
func (es *enforcedStore) Search(ctx context.Context, q *search.Query) (*store.SearchResult, error) {
	rq := enfReqFrom(ctx)
	if rq == nil {
		return es.Store.Search(ctx, q)
	}
	scan := *q
	scan.Include, scan.RevInclude = nil, nil
	scan.Offset, scan.Count, scan.Total = 0, es.e.maxScan+1, search.TotalNone
	if q.Type != "" && rq.p.Scopes != nil {
		clauses, ok := pushScopes(rq.p, q.Type)
		if !ok {
			rs := []string{"smart-scope"}
			rq.note(false, rs, "")
			return nil, denial(errcode.MinimumNecessaryViolated, rs)
		}
		if len(clauses) > 0 {
			scan.Clauses = append(slices.Clip(q.Clauses), clauses...)
		}
	}
	if q.Type == "" && rq.p.Scopes != nil {
		types, all := scopeTypes(rq.p)
		if !all {
			if len(q.Types) > 0 {
				types = slices.DeleteFunc(slices.Clone(q.Types), func(t string) bool { return !slices.Contains(types, t) })
			}
			if len(types) == 0 {
				return &store.SearchResult{}, nil // no type searched is granted
			}
			scan.Types = types
		}
	}
	clauses, none, err := es.resolveChains(ctx, q.Type, scan.Clauses)
	if err != nil {
		return nil, err
	}
	if none {
		return &store.SearchResult{}, nil // a chain reaches nothing the caller may see
	}
	scan.Clauses = clauses
	res, err := es.Store.Search(ctx, &scan)
	if err != nil {
		return nil, err
	}
	if len(res.Matches) > es.e.maxScan {
		return nil, errorf(CodeTooCostly, "more matches than the enforcement scan allows; narrow the search")
	}
	kept, err := es.filterAll(ctx, rq, res.Matches)
	if err != nil {
		return nil, err
	}
	out := &store.SearchResult{Total: len(kept), Matches: pageOf(kept, q.Offset, q.Count)}
	if q.Count == 0 {
		out.Matches = pageOf(kept, q.Offset, 0)
	}
	if (len(q.Include) > 0 || len(q.RevInclude) > 0) && len(out.Matches) > 0 {
		if out.Included, err = es.included(ctx, rq, q, out.Matches); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// resolveChains replaces every chained and _has clause by one link to the
// resources the rest of the chain reaches and the caller may see: those
// are searched first, under enforcement (recursively, link by link), and
// the clause becomes "reference in these" (forward) or "_has:T:param:_id
// in these" (reverse). Matching a chain on the store's unfiltered index
// would tell the caller that a hidden resource exists (a Patient returned
// for _has:Observation:patient:code=X although the Observation is denied).
// none is true when some chain reaches no visible resource: the search
// then matches nothing.
func (es *enforcedStore) resolveChains(ctx context.Context, typ string, clauses []search.Clause) (out []search.Clause, none bool, err error) {
	out = clauses
	cloned := false
	for i, c := range clauses {
		if len(c.Chain) == 0 {
			continue
		}
		link := c.Chain[0]
		if link.Reverse && typ != "" && len(link.Param.Targets) > 0 && !slices.Contains(link.Param.Targets, typ) {
			// A _has whose reference parameter cannot point at typ (after
			// a forward link the parser offers every type for _has).
			return nil, true, nil
		}
		rest := search.Clause{Param: c.Param, Modifier: c.Modifier, Values: c.Values, Chain: c.Chain[1:]}
		var refs, ids []string
		for _, t := range link.Types {
			res, err := es.Search(ctx, &search.Query{Type: t, Clauses: []search.Clause{rest}, Count: es.e.maxScan + 1, Total: search.TotalNone})
			var denied *Error
			if errors.As(err, &denied) && denied.Code() == Code(errcode.MinimumNecessaryViolated) {
				continue // a type the caller may not search holds nothing it may see
			}
			if err != nil {
				return nil, false, err
			}
			for _, m := range res.Matches {
				refs = append(refs, m.Type+"/"+m.ID)
				ids = append(ids, m.ID)
			}
		}
		if len(refs) == 0 {
			return nil, true, nil
		}
		var key, value string
		if link.Reverse {
			key, value = "_has:"+link.Types[0]+":"+link.Param.Code+":_id", strings.Join(ids, ",")
		} else {
			key, value = link.Param.Code, strings.Join(refs, ",")
		}
		rq, _, err := search.Parse(typ, url.Values{key: {value}}, search.ParseOptions{
			Strict: true, MaxValues: len(refs) + 1, MaxValueLength: len(value) + 1, Custom: es.e.s.customParams(),
		})
		if err != nil || len(rq.Clauses) != 1 {
			return nil, false, errors.New("fhirserver: a resolved chain did not parse to one clause")
		}
		if !cloned {
			out, cloned = slices.Clone(clauses), true
		}
		out[i] = rq.Clauses[0]
	}
	return out, false, nil
}

func (es *enforcedStore) filterAll(ctx context.Context, rq *enfReq, recs []*store.Record) ([]*store.Record, error) {
	kept := make([]*store.Record, 0, len(recs))
	for _, rec := range recs {
		o, deny, err := es.e.filterRecord(ctx, rq, policy.ActionSearch, rec)
		if err != nil {
			return nil, storeError(err)
		}
		if deny == nil {
			kept = append(kept, o)
		}
	}
	return kept, nil
}

// included runs q's includes over the page's resources (by type and _id)
// and keeps what the caller may see, each once and not in the page.
func (es *enforcedStore) included(ctx context.Context, rq *enfReq, q *search.Query, page []*store.Record) ([]*store.Record, error) {
	byType := map[string][]string{}
	seen := map[string]bool{}
	for _, rec := range page {
		byType[rec.Type] = append(byType[rec.Type], rec.ID)
		seen[rec.Type+"/"+rec.ID] = true
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	var out []*store.Record
	for _, t := range types {
		ids := byType[t]
		iq, _, err := search.Parse(t, url.Values{"_id": {strings.Join(ids, ",")}}, search.ParseOptions{MaxValues: len(ids) + 1, MaxCount: len(ids) + 1})
		if err != nil {
			return nil, storeError(err)
		}
		iq.Include, iq.RevInclude = q.Include, q.RevInclude
		iq.MaxIncluded, iq.MaxIncludeRounds = q.MaxIncluded, q.MaxIncludeRounds
		iq.Count, iq.Total = len(ids), search.TotalNone
		res, err := es.Store.Search(ctx, iq)
		if err != nil {
			return nil, err
		}
		kept, err := es.filterAll(ctx, rq, res.Included)
		if err != nil {
			return nil, err
		}
		for _, rec := range kept {
			k := rec.Type + "/" + rec.ID
			if !seen[k] {
				seen[k] = true
				out = append(out, rec)
			}
		}
	}
	return out, nil
}

// scopeTypes lists the resource types the caller's scopes let it search
// (all=true when a wildcard scope does): a system search is narrowed to
// them before the scan.
func scopeTypes(p *Principal) (types []string, all bool) {
	for _, sc := range p.Scopes.Resources {
		if sc.Perm&scopes.PermS == 0 || (sc.Context == scopes.Patient && p.Patient == "") {
			continue
		}
		if sc.ResourceType == "*" {
			return nil, true
		}
		if !slices.Contains(types, sc.ResourceType) {
			types = append(types, sc.ResourceType)
		}
	}
	sort.Strings(types)
	return types, false
}

// pushScopes returns the clauses a type-level search must be ANDed with
// under the caller's scopes (one query-restricted scope), or ok=false when
// no scope grants searching the type at all. Several alternatives are not
// pushed (they would need an OR of clause groups): the per-resource check
// applies them.
func pushScopes(p *Principal, typ string) ([]search.Clause, bool) {
	var granted []scopes.Filter
	for _, c := range []scopes.Context{scopes.User, scopes.System, scopes.Patient} {
		if c == scopes.Patient && p.Patient == "" {
			continue
		}
		if f := p.Scopes.Filter(typ, c); f.Allowed {
			granted = append(granted, f)
		}
	}
	if len(granted) == 0 {
		return nil, false
	}
	if len(granted) == 1 && len(granted[0].Alternatives) == 1 {
		return granted[0].Alternatives[0].Clauses, true
	}
	return nil, true
}
