package fhirserver

import (
	"context"
	"strconv"
	"testing"
	"time"

	"phix/access/policy"
	"phix/fhir"
	"phix/store"
)

// enforceBenchFixture: the same 100 Observations of one patient in a
// server with enforcement off (static clinician token) and on (dr-lee, on
// the patient's CareTeam, with a signed permitting consent).
func enforceBenchFixture(b *testing.B, cfgMod ...func(*Config)) (off *env, on *enfEnv, paths []string) {
	b.Helper()
	off = newEnv(b, openSQLite(b), cfgMod...)
	on = newEnfEnvCfg(b, openSQLite(b), func(c *Config) {
		for _, m := range cfgMod {
			m(c)
		}
	})
	key, _ := consentKeys(b)
	for _, e := range []*env{off, on.env} {
		e.do("PUT", "/Patient/p1", map[string]any{"resourceType": "Patient", "id": "p1"}).want(b, 201)
	}
	on.do("PUT", "/CareTeam/ct1", careTeam("ct1", "p1", "Practitioner/lee")).want(b, 201)
	exc := `,"provision":[{"type":"deny","securityLabel":[{"code":"HIV"}]}]`
	on.do("PUT", "/Consent/c1", signedConsent(b, key, "c1", "p1", actorProvision("permit", "Practitioner/lee", exc))).want(b, 201)
	for i := 0; i < 100; i++ {
		id := "o" + strconv.Itoa(i)
		for _, e := range []*env{off, on.env} {
			e.do("PUT", "/Observation/"+id, observation(id, "p1", "vital-signs", "8867-4")).want(b, 201)
		}
		paths = append(paths, "/Observation/"+id)
	}
	return off, on, paths
}

// BenchmarkEnforceReadLatency reads one resource at a time with
// enforcement off and on, interleaved in the same run: p50/p99 of each and
// the on/off ratio.
func BenchmarkEnforceReadLatency(b *testing.B) {
	off, on, paths := enforceBenchFixture(b)
	c := benchClient()
	n := min(max(b.N, 2000), 20000)
	var lOff, lOn []time.Duration
	b.ResetTimer()
	for i := 0; i < n; i++ {
		p := paths[i%len(paths)]
		t0 := time.Now()
		getOK(b, c, off.base+p, off.token)
		lOff = append(lOff, time.Since(t0))
		t0 = time.Now()
		getOK(b, c, on.base+p, on.token)
		lOn = append(lOn, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lOff, 50).Microseconds())/1000, "off-p50-ms")
	b.ReportMetric(float64(percentile(lOn, 50).Microseconds())/1000, "on-p50-ms")
	b.ReportMetric(float64(percentile(lOn, 99).Microseconds())/1000, "on-p99-ms")
	b.ReportMetric(float64(percentile(lOn, 50))/float64(percentile(lOff, 50)), "p50-on/off")
}

// BenchmarkEnforceSearchPage searches a 100-resource page (the whole
// filtered set) off and on: the p50 difference is what filtering adds,
// with the page's versions seen before and on first view; with field
// protection (the default: the PHI layer parses each body to open it, and
// the filter reuses that parse) and without (bodies go out as stored; the
// filter reads only the members it needs, fhir.ParseMembers).
func BenchmarkEnforceSearchPage(b *testing.B) {
	for _, mode := range []struct {
		name string
		mod  []func(*Config)
	}{{"protected", nil}, {"unprotected", []func(*Config){noProtect}}} {
		b.Run(mode.name, func(b *testing.B) { benchSearchPage(b, mode.mod...) })
	}
}

func benchSearchPage(b *testing.B, cfgMod ...func(*Config)) {
	off, on, _ := enforceBenchFixture(b, cfgMod...)
	c := benchClient()
	const q = "/Observation?_count=100"
	n := min(max(b.N, 200), 2000)
	var lOff, lOn, lFirst []time.Duration
	e := on.srv.enf
	b.ResetTimer()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		getOK(b, c, off.base+q, off.token)
		lOff = append(lOff, time.Since(t0))
		t0 = time.Now()
		getOK(b, c, on.base+q, on.token)
		lOn = append(lOn, time.Since(t0))
		// First view: no description of the page's versions cached.
		e.desc.mu.Lock()
		clear(e.desc.m)
		e.desc.mu.Unlock()
		t0 = time.Now()
		getOK(b, c, on.base+q, on.token)
		lFirst = append(lFirst, time.Since(t0))
	}
	b.StopTimer()
	pOff, pOn, pFirst := percentile(lOff, 50), percentile(lOn, 50), percentile(lFirst, 50)
	b.ReportMetric(float64(pOff.Microseconds())/1000, "off-p50-ms")
	b.ReportMetric(float64(pOn.Microseconds())/1000, "on-p50-ms")
	b.ReportMetric(float64((pOn-pOff).Microseconds())/1000, "added-ms")
	b.ReportMetric(float64((pFirst-pOff).Microseconds())/1000, "added-first-view-ms")
}

// BenchmarkEnforceFilterPage is the filter alone: 100 plaintext records
// through the decision point (scopes, consent, treatment, policy), with the
// versions' descriptions cached (a page seen again within the TTL) and on
// first view (parse and describe each), against parsing the same 100
// bodies (the peer primitive).
func BenchmarkEnforceFilterPage(b *testing.B) {
	_, on, _ := enforceBenchFixture(b)
	e := on.srv.enf
	ctx, rq := benchRequest(b, on)
	recs := benchRecords(b, e)
	b.Run("filter", func(b *testing.B) {
		es := &enforcedStore{Store: e.inner, e: e}
		for b.Loop() {
			kept, err := es.filterAll(ctx, rq, recs)
			if err != nil || len(kept) != 100 {
				b.Fatalf("%d kept, %v", len(kept), err)
			}
		}
	})
	b.Run("filter-first-view", func(b *testing.B) {
		// The page's versions not seen before: each is parsed and described.
		es := &enforcedStore{Store: e.inner, e: e}
		for b.Loop() {
			e.desc.mu.Lock()
			clear(e.desc.m)
			e.desc.mu.Unlock()
			kept, err := es.filterAll(ctx, rq, recs)
			if err != nil || len(kept) != 100 {
				b.Fatalf("%d kept, %v", len(kept), err)
			}
		}
	})
	b.Run("parse-only", func(b *testing.B) {
		for b.Loop() {
			for _, r := range recs {
				if _, err := fhir.Parse(r.Body, fhir.ParseOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkEnforceDecision is one consent+policy decision for one
// resource: from the caches; uncached (the consent decided over the
// patient's compiled consents and cedar evaluated: the consent has a
// label exception, so its decision is resource-specific, and the policy
// cache is emptied each time); cold (the consents reloaded and their
// ML-DSA-87 signature verified); and a map lookup as the peer.
func BenchmarkEnforceDecision(b *testing.B) {
	_, on, _ := enforceBenchFixture(b)
	e := on.srv.enf
	ctx, rq := benchRequest(b, on)
	rec := benchRecords(b, e)[0]
	// cached: the description of this version comes from the cache too;
	// the other two describe the resource each time.
	decide := func(b *testing.B, cached bool) {
		if !cached {
			e.desc.mu.Lock()
			clear(e.desc.m)
			e.desc.mu.Unlock()
		}
		_, deny, err := e.filterRecord(ctx, rq, policy.ActionRead, rec)
		if err != nil || deny != nil {
			b.Fatalf("%v %v", deny, err)
		}
	}
	b.Run("cached", func(b *testing.B) {
		decide(b, true)
		for b.Loop() {
			decide(b, true)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			e.pol.mu.Lock()
			clear(e.pol.m)
			e.pol.mu.Unlock()
			decide(b, false)
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			e.pol.mu.Lock()
			clear(e.pol.m)
			e.pol.mu.Unlock()
			e.consents.Invalidate("Patient/p1")
			decide(b, false)
		}
	})
	b.Run("map-lookup", func(b *testing.B) {
		m := map[string]int{"dr-lee\x00Observation\x00p1": 1}
		k := "dr-lee\x00Observation\x00p1"
		s := 0
		for b.Loop() {
			s += m[k]
		}
		_ = s
	})
}

func benchRequest(b *testing.B, on *enfEnv) (context.Context, *enfReq) {
	b.Helper()
	p, _ := enfPrincipals(b)["lee"]
	rq := &enfReq{p: p, pp: policy.Principal{ID: p.Subject, Roles: p.Roles}, purpose: "TREAT", reasons: map[string]bool{}, bg: map[string]bool{}}
	return context.WithValue(context.Background(), enfReqKey, rq), rq
}

func benchRecords(b *testing.B, e *enforcer) []*store.Record {
	b.Helper()
	var recs []*store.Record
	for i := 0; i < 100; i++ {
		rec, err := e.inner.Read(context.Background(), "Observation", "o"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return recs
}
