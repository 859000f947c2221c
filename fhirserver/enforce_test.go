package fhirserver

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"phix/audit"
	"phix/auth/authserver"
	"phix/auth/oidc"
)

// TestEnforceTreatmentAndSearch: a clinician reads the patients they treat;
// another patient's clinical data is refused on read (PHI-6011: break-glass
// would open it) and left out of searches, whose total counts only what the
// caller may see; an update without relationship is PHI-6018.
func TestEnforceTreatmentAndSearch(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ee := newEnfEnv(t, open(t))
			ee.seedClinical(t)
			ee.do("GET", "/Observation/o1", nil).want(t, 200)
			r := ee.do("GET", "/Observation/o4", nil).want(t, 403)
			if r.errCode() != "PHI-6011" || !strings.Contains(string(r.body), "treatment-relationship-required") {
				t.Fatalf("read without relationship: %s %s", r.errCode(), r.body)
			}
			// Demographics are not behind the relationship rule.
			ee.do("GET", "/Patient/p2", nil).want(t, 200)
			up := ee.do("PUT", "/Observation/o4", observation("o4", "p2", "laboratory", "1")).want(t, 403)
			if up.errCode() != "PHI-6018" {
				t.Fatalf("update without relationship: %s", up.errCode())
			}
			s := ee.do("GET", "/Observation?_count=100", nil).want(t, 200)
			got := s.ids("match")
			sort.Strings(got)
			if s.total() != 4 || !slices.Equal(got, []string{"o1", "o2", "o3", "o6"}) {
				t.Fatalf("search total %d ids %v", s.total(), got)
			}
			// kim treats both.
			if n := ee.as("kim").do("GET", "/Observation", nil).want(t, 200).total(); n != 6 {
				t.Fatalf("kim sees %d", n)
			}
			// Paging over the filtered set: every page link, exact total.
			var paged []string
			next := "/Observation?_count=3&_sort=_id"
			for pages := 0; next != ""; pages++ {
				if pages > 5 {
					t.Fatal("paging does not end")
				}
				p := ee.do("GET", next, nil).want(t, 200)
				if p.total() != 4 {
					t.Fatalf("page total %d", p.total())
				}
				paged = append(paged, p.ids("match")...)
				next = p.link("next")
			}
			if !slices.Equal(paged, []string{"o1", "o2", "o3", "o6"}) {
				t.Fatalf("paged %v", paged)
			}
			// _summary=count and _total
			if n := ee.do("GET", "/Observation?_summary=count", nil).want(t, 200).total(); n != 4 {
				t.Fatalf("count %d", n)
			}
			// _include: p2 never comes in through an include of a hidden match;
			// _revinclude of p2 brings only what lee may see (nothing clinical).
			inc := ee.do("GET", "/Observation?_include=Observation:subject", nil).want(t, 200)
			if ids := inc.ids("include"); !slices.Equal(ids, []string{"p1"}) {
				t.Fatalf("included %v", ids)
			}
			rev := ee.do("GET", "/Patient?_id=p2&_revinclude=Observation:subject", nil).want(t, 200)
			if m, i := rev.ids("match"), rev.ids("include"); !slices.Equal(m, []string{"p2"}) || len(i) != 0 {
				t.Fatalf("revinclude match %v include %v", m, i)
			}
			// History: the type history counts only visible versions; the
			// instance history of a hidden resource is refused.
			h := ee.do("GET", "/Observation/_history", nil).want(t, 200)
			if h.total() != 4 {
				t.Fatalf("history total %d", h.total())
			}
			if hr := ee.do("GET", "/Observation/o4/_history", nil).want(t, 403); hr.errCode() != "PHI-6011" {
				t.Fatalf("instance history %s", hr.errCode())
			}
			ee.do("GET", "/Observation/o1/_history/1", nil).want(t, 200)
			ee.do("GET", "/Observation/o4/_history/1", nil).want(t, 403)
			// Bundle GET entries (batch) are decided one by one.
			b := ee.do("POST", "", map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
				map[string]any{"request": map[string]any{"method": "GET", "url": "Observation/o1"}},
				map[string]any{"request": map[string]any{"method": "GET", "url": "Observation/o4"}},
			}}).want(t, 200)
			es := b.entries()
			st := func(i int) string { r, _ := es[i]["response"].(map[string]any); s, _ := r["status"].(string); return s }
			if !strings.HasPrefix(st(0), "200") || !strings.HasPrefix(st(1), "403") {
				t.Fatalf("batch statuses %s %s", st(0), st(1))
			}
			// The transaction's GET entry too.
			tx := ee.do("POST", "", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"request": map[string]any{"method": "GET", "url": "Observation/o4"}},
			}})
			if tx.status != 403 {
				t.Fatalf("transaction GET of hidden resource: %d", tx.status)
			}
		})
	}
}

// TestEnforceScopes: SMART scopes bound every interaction (PHI-6010),
// query-restricted scopes filter searches and reads, and a read-only token
// cannot write (scope escalation).
func TestEnforceScopes(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t))
	ee.seedClinical(t)
	po := ee.as("patonly")
	po.do("GET", "/Patient/p1", nil).want(t, 200)
	if r := po.do("GET", "/Observation/o1", nil).want(t, 403); r.errCode() != "PHI-6010" {
		t.Fatalf("read outside scopes: %s", r.errCode())
	}
	if r := po.do("GET", "/Observation", nil).want(t, 403); r.errCode() != "PHI-6010" {
		t.Fatalf("search outside scopes: %s", r.errCode())
	}
	// The system search leaves out what the scopes do not grant.
	sys := po.do("GET", "?_type=Patient,Observation", nil).want(t, 200)
	for _, id := range sys.ids("match") {
		if strings.HasPrefix(id, "o") {
			t.Fatalf("system search returned %s", id)
		}
	}
	// Narrowed before the scan: the total counts the granted types only.
	if all := po.do("GET", "?_count=100", nil).want(t, 200); all.total() != 2 {
		t.Fatalf("system search under Patient scopes: total %d %v", all.total(), all.ids("match"))
	}
	v := ee.as("vitals")
	s := v.do("GET", "/Observation", nil).want(t, 200)
	got := s.ids("match")
	sort.Strings(got)
	if s.total() != 3 || !slices.Equal(got, []string{"o1", "o2", "o6"}) {
		t.Fatalf("vitals scope: total %d %v", s.total(), got)
	}
	v.do("GET", "/Observation/o1", nil).want(t, 200)
	if r := v.do("GET", "/Observation/o3", nil).want(t, 403); r.errCode() != "PHI-6010" {
		t.Fatalf("lab read under vitals scope: %s", r.errCode())
	}
	ro := ee.as("readonly")
	for _, c := range []struct{ method, path string }{
		{"PUT", "/Observation/o1"}, {"POST", "/Observation"}, {"DELETE", "/Observation/o1"},
	} {
		var body any
		if c.method != "DELETE" {
			body = observation("o1", "p1", "vital-signs", "8867-4")
		}
		if r := ro.do(c.method, c.path, body).want(t, 403); r.errCode() != "PHI-6010" {
			t.Fatalf("%s with read-only scopes: %s", c.method, r.errCode())
		}
	}
}

// TestEnforcePurpose: the purpose of use comes from X-Purpose-Of-Use (or the
// token); one outside the list is refused, one the role may not use too.
func TestEnforcePurpose(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t))
	ee.seedClinical(t)
	if r := ee.do("GET", "/Observation/o1", nil, HeaderPurpose, "MARKETING").want(t, 403); r.errCode() != "PHI-6017" ||
		!strings.Contains(string(r.body), "purpose-not-allowed") {
		t.Fatalf("unknown purpose: %s %s", r.errCode(), r.body)
	}
	// Research is not a clinician's purpose; break-glass would be (PHI-6011).
	if r := ee.do("GET", "/Observation/o1", nil, HeaderPurpose, "HRESCH").want(t, 403); r.errCode() != "PHI-6011" {
		t.Fatalf("clinician for research: %s", r.errCode())
	}
	if r := ee.do("GET", "/Observation?_count=5", nil, HeaderPurpose, "HPAYMT").want(t, 200); r.total() != 0 {
		t.Fatalf("payment purpose sees %d", r.total())
	}
	// A researcher's default purpose is HRESCH: no identified clinical data.
	if r := ee.as("research").do("GET", "/Observation/o1", nil).want(t, 403); r.errCode() != "PHI-6017" {
		t.Fatalf("researcher: %s", r.errCode())
	}
	if r := ee.as("research").do("POST", "/Observation", observation("x", "p1", "laboratory", "1")).want(t, 403); r.errCode() != "PHI-6017" {
		t.Fatalf("researcher write: %s", r.errCode())
	}
}

// TestEnforceDecisionAudited: the audit event of each request carries the
// decision (effect and policy ids) and the purpose.
func TestEnforceDecisionAudited(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t))
	ee.seedClinical(t)
	ok := ee.do("GET", "/Observation/o1", nil).want(t, 200).header.Get("X-Request-Id")
	no := ee.do("GET", "/Observation/o4", nil).want(t, 403).header.Get("X-Request-Id")
	okEv, err := ee.waitEvent(t, func(e audit.Event) bool { return e.RequestID == ok })
	if err != nil || okEv.Decision == nil || okEv.Decision.Effect != "permit" || !slices.Contains(okEv.Decision.Policies, "clinician-treatment") ||
		okEv.Why == nil || okEv.Why.Purpose != "TREAT" {
		t.Fatalf("permit event: %+v %+v %v", okEv.Decision, okEv.Why, err)
	}
	noEv, err := ee.waitEvent(t, func(e audit.Event) bool { return e.RequestID == no && e.Action == audit.ActionRead })
	if err != nil || noEv.Decision == nil || noEv.Decision.Effect != "deny" || !slices.Contains(noEv.Decision.Policies, "treatment-relationship-required") {
		t.Fatalf("deny event: %+v %v", noEv.Decision, err)
	}
}

// TestEnforceWithBearerTokens: the same decision point behind real OIDC
// tokens of the node's authorization server: scopes, fhirUser and purpose
// come from the token, and a read-only token cannot write.
func TestEnforceWithBearerTokens(t *testing.T) {
	as := ownAS(t)
	v, err := oidc.New(oidc.Options{}, oidc.Provider{Issuer: as.Issuer(), Audience: []string{testAudience}, MaxLifetime: authserver.MaxTokenLifetime})
	if err != nil {
		t.Fatal(err)
	}
	ba, err := NewBearerAuth(BearerAuthOptions{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	ee := newEnfEnvCfg(t, openSQLite(t), func(c *Config) { c.Auth = ba })
	ee.token = issue(t, as, authserver.Principal{Subject: "dr-lee", ClientID: "ehr", Roles: []string{"clinician"}, FHIRUser: "Practitioner/lee", Scope: "user/*.cruds"})
	ee.seedClinical(t)
	ro := ee.as(issue(t, as, authserver.Principal{Subject: "dr-lee", ClientID: "viewer", Roles: []string{"clinician"}, FHIRUser: "Practitioner/lee", Scope: "user/Observation.rs"}))
	ro.do("GET", "/Observation/o1", nil).want(t, 200)
	if r := ro.do("GET", "/Patient/p1", nil).want(t, 403); r.errCode() != "PHI-6010" {
		t.Fatalf("read outside the token's scopes: %s", r.errCode())
	}
	if r := ro.do("PUT", "/Observation/o1", observation("o1", "p1", "vital-signs", "8867-4")).want(t, 403); r.errCode() != "PHI-6010" {
		t.Fatalf("write with a read-only token: %s", r.errCode())
	}
	if n := ro.do("GET", "/Observation", nil).want(t, 200).total(); n != 4 {
		t.Fatalf("search total %d", n)
	}
	res := ee.as(issue(t, as, authserver.Principal{Subject: "res-9", ClientID: "study", Roles: []string{"researcher"}, Purpose: "HRESCH", Scope: "user/*.rs"}))
	if r := res.do("GET", "/Observation/o1", nil).want(t, 403); r.errCode() != "PHI-6017" {
		t.Fatalf("researcher token: %s", r.errCode())
	}
}

// TestEnforceScanBound: a filtered search or history matching more than
// MaxScan resources is refused (too-costly) rather than answered with a
// total that would be wrong; a narrower search passes.
func TestEnforceScanBound(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t), func(e *Enforcement) { e.MaxScan = 5 })
	ee.seedClinical(t)
	if r := ee.do("GET", "/Observation", nil).want(t, 403); r.errCode() != string(CodeTooCostly) {
		t.Fatalf("search over the bound: %s", r.errCode())
	}
	if r := ee.do("GET", "/_history", nil).want(t, 403); r.errCode() != string(CodeTooCostly) {
		t.Fatalf("history over the bound: %s", r.errCode())
	}
	if n := ee.do("GET", "/Observation?patient=p1", nil).want(t, 200).total(); n != 4 {
		t.Fatalf("narrow search: %d", n)
	}
	// History paging over the filtered versions.
	h := ee.do("GET", "/Observation/o1/_history?_count=1", nil).want(t, 200)
	if h.total() != 1 || h.link("next") != "" {
		t.Fatalf("instance history: total %d next %q", h.total(), h.link("next"))
	}
}

// TestEnforceNoPHIInDenials: denials, the server log and the audit trail
// name policies and checks, never the data they protect.
func TestEnforceNoPHIInDenials(t *testing.T) {
	ee := newEnfEnv(t, openSQLite(t))
	ee.seedClinical(t)
	ee.do("PUT", "/Patient/p2", map[string]any{"resourceType": "Patient", "id": "p2",
		"name": []any{map[string]any{"family": "Quuxworth", "given": []any{"Zebediah"}}}}).want(t, 200)
	obs := observation("o7", "p2", "laboratory", "2345-7")
	obs["note"] = []any{map[string]any{"text": "Zebediah reports dizziness"}}
	ee.as("kim").do("PUT", "/Observation/o7", obs).want(t, 201)
	var bodies []string
	for _, path := range []string{"/Observation/o7", "/Observation/o7/_history/1", "/Observation?_id=o7", "/Patient/p2/$consent-status"} {
		r := ee.do("GET", path, nil)
		bodies = append(bodies, string(r.body))
	}
	bodies = append(bodies, ee.logs.String())
	for _, ev := range ee.events(t) {
		b, _ := json.Marshal(ev)
		bodies = append(bodies, string(b))
	}
	for _, b := range bodies {
		if strings.Contains(b, "Zebediah") || strings.Contains(b, "Quuxworth") || strings.Contains(b, "dizziness") {
			t.Fatalf("PHI in a denial, log or audit event: %.300s", b)
		}
	}
}

// TestEnforceOrganisationTags: with OrganisationTags, a resource belongs to
// its first writer's organisation; principals of another organisation are
// refused it (PHI-6017, other-organisation) even with a treatment
// relationship, cannot take it over by an update, and cannot forge an
// owner tag.
func TestEnforceOrganisationTags(t *testing.T) {
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ee := newEnfEnv(t, open(t), func(e *Enforcement) { e.OrganisationTags = true })
			zhao := ee.as("zhao")
			ee.do("PUT", "/Patient/p9", map[string]any{"resourceType": "Patient", "id": "p9", "active": true}).want(t, 201)
			ee.do("PUT", "/CareTeam/ct9", careTeam("ct9", "p9", "Practitioner/lee", "Practitioner/zhao")).want(t, 201)
			o := observation("o9", "p9", "vital-signs", "8867-4")
			o["meta"] = map[string]any{"tag": []any{map[string]any{"system": OrganisationTagSystem, "code": "hospital-c"}}}
			ee.do("PUT", "/Observation/o9", o).want(t, 201)

			r := ee.do("GET", "/Observation/o9", nil).want(t, 200)
			tags, _ := r.obj["meta"].(map[string]any)["tag"].([]any)
			if len(tags) != 1 || tags[0].(map[string]any)["code"] != "hospital-a" {
				t.Fatalf("owner tag %v: the writer's organisation replaces the client's", tags)
			}
			if r := zhao.do("GET", "/Observation/o9", nil).want(t, 403); r.errCode() != "PHI-6017" || !strings.Contains(string(r.body), "other-organisation") {
				t.Fatalf("another organisation's read: %s %s", r.errCode(), r.body)
			}
			if n := zhao.do("GET", "/Observation?patient=p9", nil).want(t, 200).total(); n != 0 {
				t.Fatalf("another organisation's search: total %d", n)
			}
			// An update by the other organisation is refused; one by the
			// owner keeps the owner whatever the body says.
			zhao.do("PUT", "/Observation/o9", observation("o9", "p9", "vital-signs", "8867-4")).want(t, 403)
			ee.do("PUT", "/Observation/o9", o).want(t, 200)
			if r := ee.do("GET", "/Observation/o9", nil).want(t, 200); !strings.Contains(string(r.body), `"code":"hospital-a"`) || strings.Contains(string(r.body), `"code":"hospital-c"`) {
				t.Fatalf("owner after update: %s", r.body)
			}
			// zhao's own writes are hospital-c's: lee is refused them.
			zhao.do("PUT", "/Observation/z1", observation("z1", "p9", "vital-signs", "8867-4")).want(t, 201)
			zhao.do("GET", "/Observation/z1", nil).want(t, 200)
			if r := ee.do("GET", "/Observation/z1", nil).want(t, 403); r.errCode() != "PHI-6017" {
				t.Fatalf("lee reads hospital-c's write: %s", r.errCode())
			}
			zhao.do("DELETE", "/Observation/o9", nil).want(t, 403)
		})
	}
}
