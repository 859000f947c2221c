package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"phix/fhir"
	"phix/fhir/search"
	"phix/internal/testenv"
	"phix/store"
)

// The Synthea replay corpus drives the large search benchmark (docs/search.md,
// "1M resources"): the shared Synthea bundles are stored again and again,
// each replay with fresh ids, so that a database of any size keeps the shape
// of real patient records (Observations by patient and code, Encounters at
// Organizations, Practitioners).
//
// Replay r rewrites every resource id (a UUID) by replacing its first eight
// hex digits with r in hex; every occurrence of a corpus id in a body (the
// reference "Type/<id>", identifiers carrying the id) is rewritten the same
// way, so references stay consistent within a replay and never cross
// replays. Transaction-bundle references (urn:uuid:<id>) become "Type/<id>"
// as the server's transaction processing would make them. Organizations and
// Practitioners shared by several bundles are stored once per replay (with
// the first bundle that has them).

// Bench1MEnv gates the large benchmark: it runs only when this variable is
// set, so make test never loads a million resources.
const Bench1MEnv = "PHIX_BENCH_1M"

// Bench1MDir returns the persistent directory for the large benchmark's
// databases (PHIX_BENCH_DIR, default $TMPDIR/phix-bench-1m), created if
// needed. Loads are resumed, so a second run reuses the data.
func Bench1MDir(tb testing.TB) string {
	dir := os.Getenv("PHIX_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "phix-bench-1m")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Corpus is the Synthea bundles prepared for replay.
type Corpus struct {
	Bundles [][]corpusEntry
	// pairs are (patient id, Observation code) pairs present in the corpus,
	// for Observation?patient=X&code=Y.
	pairs [][3]string
	// providers are Organization ids whose Encounters have Observations, for
	// the two-level chain.
	providers []string
	// busy are the patients with at least IncludePage Observations.
	busy []string
}

// IncludePage is the page size of the _include benchmark.
const IncludePage = 50

type corpusEntry struct {
	typ, id string
	body    []byte
	offs    []int // where corpus ids start in body
}

// Size returns the number of resources one replay stores.
func (c *Corpus) Size() int {
	n := 0
	for _, b := range c.Bundles {
		n += len(b)
	}
	return n
}

// ReplaysFor returns how many replays make at least n resources.
func (c *Corpus) ReplaysFor(n int) int { return (n + c.Size() - 1) / c.Size() }

// LoadCorpus reads and prepares the shared Synthea bundles.
func LoadCorpus(tb testing.TB) *Corpus {
	tb.Helper()
	type raw struct {
		typ, id string
		obj     map[string]any
	}
	var all [][]raw
	fullURL := map[string]string{} // urn:uuid:<id> -> Type/<id>
	seen := map[string]bool{}
	for _, bd := range testenv.SyntheaBundles(tb) {
		var doc struct {
			Entry []struct {
				FullURL  string          `json:"fullUrl"`
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(bd.Data, &doc); err != nil {
			tb.Fatalf("%s: %v", bd.Name, err)
		}
		var rs []raw
		for _, e := range doc.Entry {
			res, err := fhir.Parse(e.Resource, fhir.ParseOptions{})
			if err != nil {
				tb.Fatalf("%s: %v", bd.Name, err)
			}
			if len(res.ID) != 36 {
				tb.Fatalf("%s: id %q is not a UUID", bd.Name, res.ID)
			}
			fullURL[e.FullURL] = res.Type + "/" + res.ID
			key := res.Type + "/" + res.ID
			if seen[key] {
				continue
			}
			seen[key] = true
			rs = append(rs, raw{res.Type, res.ID, res.Object})
		}
		all = append(all, rs)
	}
	ids := map[string]bool{}
	suffixes := map[string]bool{}
	for _, rs := range all {
		for _, r := range rs {
			ids[r.id] = true
			if suffixes[r.id[8:]] {
				tb.Fatalf("two corpus ids share the suffix %s: replays would collide", r.id[8:])
			}
			suffixes[r.id[8:]] = true
		}
	}
	c := &Corpus{}
	obsCount := map[string]int{}
	encProvider := map[string]string{}
	provObs := map[string]bool{}
	var encOfObs []string
	for _, rs := range all {
		var b []corpusEntry
		for _, r := range rs {
			rewriteRefs(r.obj, fullURL)
			body, err := json.Marshal(r.obj)
			if err != nil {
				tb.Fatal(err)
			}
			e := corpusEntry{typ: r.typ, id: r.id, body: body}
			for i := 0; i+36 <= len(body); i++ {
				if body[i] != '"' && body[i] != '/' && body[i] != ':' {
					continue
				}
				if i+37 <= len(body) && ids[string(body[i+1:i+37])] {
					e.offs = append(e.offs, i+1)
					i += 36
				}
			}
			b = append(b, e)
			switch r.typ {
			case "Observation":
				subj := refOf(r.obj["subject"])
				if pid, ok := strings.CutPrefix(subj, "Patient/"); ok {
					obsCount[pid]++
					if code := firstCoding(r.obj["code"]); code != [2]string{} {
						c.pairs = append(c.pairs, [3]string{pid, code[0], code[1]})
					}
				}
				if enc, ok := strings.CutPrefix(refOf(r.obj["encounter"]), "Encounter/"); ok {
					encOfObs = append(encOfObs, enc)
				}
			case "Encounter":
				if org, ok := strings.CutPrefix(refOf(r.obj["serviceProvider"]), "Organization/"); ok {
					encProvider[r.id] = org
				}
			}
		}
		c.Bundles = append(c.Bundles, b)
	}
	for _, enc := range encOfObs {
		if org := encProvider[enc]; org != "" {
			provObs[org] = true
		}
	}
	for org := range provObs {
		c.providers = append(c.providers, org)
	}
	for pid, n := range obsCount {
		if n >= IncludePage {
			c.busy = append(c.busy, pid)
		}
	}
	slices.Sort(c.providers)
	slices.Sort(c.busy)
	if len(c.pairs) == 0 || len(c.providers) == 0 || len(c.busy) == 0 {
		tb.Fatal("the Synthea corpus has no Observations by patient, provider or busy patient")
	}
	return c
}

func refOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

func firstCoding(v any) [2]string {
	m, _ := v.(map[string]any)
	cs, _ := m["coding"].([]any)
	for _, c := range cs {
		cm, _ := c.(map[string]any)
		sys, _ := cm["system"].(string)
		code, _ := cm["code"].(string)
		if sys != "" && code != "" {
			return [2]string{sys, code}
		}
	}
	return [2]string{}
}

// rewriteRefs turns transaction references (urn:uuid:...) into Type/id.
func rewriteRefs(v any, fullURL map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if s, ok := c.(string); ok && k == "reference" {
				if to, ok := fullURL[s]; ok {
					x[k] = to
				}
				continue
			}
			rewriteRefs(c, fullURL)
		}
	case []any:
		for _, c := range x {
			rewriteRefs(c, fullURL)
		}
	}
}

// replayID is id in replay r.
func replayID(id string, r int) string { return fmt.Sprintf("%08x", r) + id[8:] }

// writes returns bundle b of replay r as store writes, bodies rewritten and
// index entries extracted as the server would.
func (c *Corpus) writes(b, r int, at time.Time) ([]*store.Write, error) {
	prefix := []byte(fmt.Sprintf("%08x", r))
	out := make([]*store.Write, 0, len(c.Bundles[b]))
	for _, e := range c.Bundles[b] {
		body := bytes.Clone(e.body)
		for _, off := range e.offs {
			copy(body[off:off+8], prefix)
		}
		res, err := fhir.Parse(body, fhir.ParseOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, &store.Write{
			Type: e.typ, ID: replayID(e.id, r), Version: 1, Method: "POST",
			LastUpdated: at, Body: body, Index: search.Extract(res),
		})
	}
	return out, nil
}

// Load stores replays 0..replays-1, skipping bundles already stored (a
// previous run's), one transaction per bundle; preparing the next bundle
// (parse and extract) overlaps with storing the current one. It logs the
// rate to tb, and returns how many resources it stored.
func (c *Corpus) Load(tb testing.TB, s store.Store, replays int) int {
	tb.Helper()
	ctx := context.Background()
	type job struct {
		ws  []*store.Write
		err error
	}
	jobs := make(chan job, 4)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(jobs)
		for r := 0; r < replays; r++ {
			for b := range c.Bundles {
				first := c.Bundles[b][0]
				if _, err := s.Read(ctx, first.typ, replayID(first.id, r)); err == nil {
					continue // stored by an earlier run
				}
				ws, err := c.writes(b, r, time.Now().UTC().Truncate(time.Microsecond))
				select {
				case jobs <- job{ws, err}:
				case <-stop:
					return
				}
				if err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	last := start
	n, bundles := 0, 0
	for j := range jobs {
		if j.err != nil {
			tb.Fatal(j.err)
		}
		err := s.Tx(ctx, func(tx store.Tx) error {
			for _, w := range j.ws {
				if _, err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("load bundle: %v", err)
		}
		n += len(j.ws)
		bundles++
		if time.Since(last) > 30*time.Second {
			last = time.Now()
			tb.Logf("loaded %d resources in %s (%.0f/s)", n, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds())
		}
	}
	if n > 0 {
		tb.Logf("loaded %d resources (%d bundles) in %s: %.0f resources/s", n, bundles, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds())
	}
	return n
}

// Query is one benchmark query, parsed as the server would parse it.
type Query struct {
	Name  string
	Query *search.Query
	Text  string // the query string, for reports
}

func parse(tb testing.TB, typ, qs string) *search.Query {
	v, err := url.ParseQuery(qs)
	if err != nil {
		tb.Fatal(err)
	}
	q, _, err := search.Parse(typ, v, search.ParseOptions{Strict: true})
	if err != nil {
		tb.Fatalf("%s?%s: %v", typ, qs, err)
	}
	return q
}

// PatientCode is Observation?patient=X&code=Y for a random patient and one of
// its Observation codes, in a random replay below replays.
func (c *Corpus) PatientCode(tb testing.TB, r *rand.Rand, replays int) Query {
	p := c.pairs[r.IntN(len(c.pairs))]
	qs := "patient=Patient/" + replayID(p[0], r.IntN(replays)) + "&code=" + url.QueryEscape(p[1]+"|"+p[2]) + "&_count=50"
	return Query{"patient-code", parse(tb, "Observation", qs), "Observation?" + qs}
}

// Chain2 is the two-level chain Observation?encounter.service-provider.identifier=X:
// the Observations of Encounters served by one Organization of one replay.
func (c *Corpus) Chain2(tb testing.TB, r *rand.Rand, replays int) Query {
	org := replayID(c.providers[r.IntN(len(c.providers))], r.IntN(replays))
	qs := "encounter.service-provider.identifier=" + url.QueryEscape("https://github.com/synthetichealth/synthea|"+org) + "&_count=20"
	return Query{"chain2", parse(tb, "Observation", qs), "Observation?" + qs}
}

// Include is a full page (IncludePage) of one busy patient's Observations,
// with _include=Observation:encounter, _include=Observation:subject and
// _include:iterate=Encounter:service-provider when include is set; the total is not computed, so the difference between the
// two is the include cost alone.
func (c *Corpus) Include(tb testing.TB, r *rand.Rand, replays int, include bool) Query {
	pid := replayID(c.busy[r.IntN(len(c.busy))], r.IntN(replays))
	qs := fmt.Sprintf("patient=Patient/%s&_count=%d&_total=none", pid, IncludePage)
	name := "page"
	if include {
		qs += "&_include=Observation:encounter&_include=Observation:subject&_include:iterate=Encounter:service-provider"
		name = "include"
	}
	return Query{name, parse(tb, "Observation", qs), "Observation?" + qs}
}

// BenchQueries runs b.N queries from next and reports the median and p95
// latency, and the mean number of matches and included resources.
func BenchQueries(b *testing.B, s store.Store, next func(r *rand.Rand) Query) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(11, 12))
	lat := make([]time.Duration, 0, b.N)
	var matches, included int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		qq := next(r)
		start := time.Now()
		res, err := s.Search(ctx, qq.Query)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatalf("%s: %v", qq.Text, err)
		}
		if len(res.Matches) == 0 {
			b.Fatalf("%s matched nothing", qq.Text)
		}
		matches += len(res.Matches)
		included += len(res.Included)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(matches)/float64(b.N), "matches/op")
	b.ReportMetric(float64(included)/float64(b.N), "included/op")
}

// Read is the raw primitive the searches are compared with: reading one
// random Observation by id.
func (c *Corpus) Read(r *rand.Rand, replays int) (typ, id string) {
	for {
		b := c.Bundles[r.IntN(len(c.Bundles))]
		e := b[r.IntN(len(b))]
		if e.typ == "Observation" {
			return e.typ, replayID(e.id, r.IntN(replays))
		}
	}
}

// BenchRead reads b.N random Observations and reports the median and p95.
func (c *Corpus) BenchRead(b *testing.B, s store.Store, replays int) {
	r := rand.New(rand.NewPCG(13, 14))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		typ, id := c.Read(r, replays)
		start := time.Now()
		if _, err := s.Read(context.Background(), typ, id); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}

// BenchSynthea loads replays into s (resuming an earlier load), calls
// analyze when it stored anything, and runs the query benchmarks as
// sub-benchmarks: read (the raw primitive: one Observation by id),
// patient-code, chain2, page (a busy patient's page of Observations) and
// include (the same page with three includes). explain, when not nil, is
// called with one query of each kind to log its plan.
func (c *Corpus) BenchSynthea(b *testing.B, s store.Store, replays int, analyze func() error, explain func(q Query) string) {
	if c.Load(b, s, replays) > 0 {
		if err := analyze(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("read", func(b *testing.B) { c.BenchRead(b, s, replays) })
	r := rand.New(rand.NewPCG(3, 4))
	kinds := []func(r *rand.Rand) Query{
		func(r *rand.Rand) Query { return c.PatientCode(b, r, replays) },
		func(r *rand.Rand) Query { return c.Chain2(b, r, replays) },
		func(r *rand.Rand) Query { return c.Include(b, r, replays, false) },
		func(r *rand.Rand) Query { return c.Include(b, r, replays, true) },
	}
	for _, k := range kinds {
		sample := k(r)
		if explain != nil {
			b.Logf("plan of %s:\n%s", sample.Text, explain(sample))
		}
		b.Run(sample.Name, func(b *testing.B) { BenchQueries(b, s, k) })
	}
}
