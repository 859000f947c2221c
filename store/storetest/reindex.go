package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"phix/fhir"
	"phix/fhir/search"
	"phix/store"
	"phix/store/reindex"
)

// RunReindex is the contract suite of store.Reindexer and of custom
// SearchParameters with background reindexing (store/reindex) on the
// backend. The opener's store must implement store.Reindexer.
func RunReindex(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Batch", testReindexBatch},
		{"Jobs", testReindexJobs},
		{"CustomParameter", testCustomParameter},
		{"ConcurrentWrites", testReindexConcurrent},
		{"Resume", testReindexResume},
		{"Replicas", testReindexReplicas},
		{"Lease", testReindexLease},
		{"JobsSince", testJobsSince},
		{"JobPurgeStore", testJobPurgeStore},
		{"JobPurgeManager", testJobPurgeManager},
		{"JobPurgeReplicas", testJobPurgeReplicas},
		{"JobsIncrementalRefresh", testJobsIncrementalRefresh},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func reindexer(t *testing.T, s store.Store) store.Reindexer {
	rx, ok := s.(store.Reindexer)
	if !ok {
		t.Fatalf("%T does not implement store.Reindexer", s)
	}
	return rx
}

const colorURL = "http://example.org/fhir/StructureDefinition/favourite-colour"

// colorPatient is a Patient with a family name and, when color is not
// empty, the favourite-colour extension the custom parameter indexes.
func colorPatient(id, family, color string) []byte {
	ext := ""
	if color != "" {
		ext = fmt.Sprintf(`,"extension":[{"url":%q,"valueCode":%q}]`, colorURL, color)
	}
	return fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"name":[{"family":%q}]%s}`, id, family, ext)
}

// colorParam is the SearchParameter resource defining "colour" on Patient.
func colorParam(id, status, expr string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"SearchParameter","id":%q,"url":"http://example.org/fhir/SearchParameter/patient-colour",
"name":"colour","status":%q,"code":"colour","base":["Patient"],"type":"token","expression":%q,"description":"favourite colour"}`, id, status, expr)
}

const colorExpr = "Patient.extension.where(url='" + colorURL + "').value"

// putBody writes body as the next version of its resource through s,
// extracting its entries with extract inside the transaction.
func putBody(ctx context.Context, s store.Store, body []byte, extract func(*fhir.Resource) []search.Entry) (*store.Record, error) {
	res, err := fhir.Parse(body, fhir.ParseOptions{})
	if err != nil {
		return nil, err
	}
	var rec *store.Record
	err = s.Tx(ctx, func(tx store.Tx) error {
		var version int64 = 1
		cur, err := tx.Read(ctx, res.Type, res.ID)
		switch {
		case err == nil, errors.Is(err, store.ErrDeleted):
			version = cur.Version + 1
		case errors.Is(err, store.ErrNotFound):
		default:
			return err
		}
		var idx []search.Entry
		if extract != nil {
			idx = extract(res)
		}
		rec, err = tx.Put(ctx, &store.Write{Type: res.Type, ID: res.ID, Version: version, Method: "PUT",
			LastUpdated: time.Now().UTC().Truncate(time.Microsecond), Body: body, Index: idx})
		return err
	})
	return rec, err
}

// deleteRes writes a deletion of typ/id through s.
func deleteRes(ctx context.Context, s store.Store, typ, id string) error {
	return s.Tx(ctx, func(tx store.Tx) error {
		cur, err := tx.Read(ctx, typ, id)
		if err != nil {
			return err
		}
		_, err = tx.Put(ctx, &store.Write{Type: typ, ID: id, Version: cur.Version + 1, Deleted: true, Method: "DELETE",
			LastUpdated: time.Now().UTC().Truncate(time.Microsecond)})
		return err
	})
}

func mustPutBody(t *testing.T, s store.Store, body []byte, extract func(*fhir.Resource) []search.Entry) *store.Record {
	t.Helper()
	rec, err := putBody(ctx, s, body, extract)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// searchIDs parses qs for typ (with the custom registry) and returns the
// ids of every match, following pages.
func searchIDs(t *testing.T, s store.Store, custom *search.Custom, typ, qs string) ([]string, error) {
	t.Helper()
	v, err := url.ParseQuery(qs)
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := search.Parse(typ, v, search.ParseOptions{Strict: true, Custom: custom})
	if err != nil {
		return nil, err
	}
	q.Count, q.Total = 1000, search.TotalAccurate
	var ids []string
	for {
		res, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Matches {
			ids = append(ids, r.ID)
		}
		q.Offset += len(res.Matches)
		if len(res.Matches) == 0 || q.Offset >= res.Total {
			break
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func builtinExtract(r *fhir.Resource) []search.Entry { return search.Extract(r) }

// testReindexBatch drives store.Reindexer directly: keyset batches, full and
// partial replacement, type filter, deleted resources, counts, drops.
func testReindexBatch(t *testing.T, open Opener) {
	s := open(t)
	rx := reindexer(t, s)
	// Written without index entries, as if by a version without them.
	for i := 0; i < 25; i++ {
		mustPutBody(t, s, colorPatient(fmt.Sprintf("p%02d", i), fmt.Sprintf("Fam%02d", i), ""), nil)
	}
	mustPutBody(t, s, []byte(`{"resourceType":"Organization","id":"o1","name":"Acme"}`), nil)
	if err := deleteRes(ctx, s, "Patient", "p24"); err != nil {
		t.Fatal(err)
	}
	if n, err := rx.CountCurrent(ctx, []string{"Patient"}, 0); err != nil || n != 24 {
		t.Fatalf("CountCurrent(Patient) = %d, %v; want 24", n, err)
	}
	if n, err := rx.CountCurrent(ctx, nil, 0); err != nil || n != 25 {
		t.Fatalf("CountCurrent(all) = %d, %v; want 25", n, err)
	}
	if ids, _ := searchIDs(t, s, nil, "Patient", "family=fam0"); len(ids) != 0 {
		t.Fatalf("before reindex: %v", ids)
	}
	extract := func(r *store.Record) ([]search.Entry, error) {
		res, err := fhir.Parse(r.Body, fhir.ParseOptions{})
		if err != nil {
			return nil, err
		}
		return search.Extract(res), nil
	}
	after, total, batches := int64(0), 0, 0
	for {
		last, n, err := rx.ReindexBatch(ctx, &store.ReindexBatch{Types: []string{"Patient"}, After: after, Limit: 7, Extract: extract})
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && last <= after {
			t.Fatalf("cursor did not advance: %d -> %d", after, last)
		}
		after, total, batches = last, total+n, batches+1
		if n < 7 {
			break
		}
	}
	if total != 24 || batches != 4 {
		t.Fatalf("reindexed %d resources in %d batches; want 24 in 4", total, batches)
	}
	if ids, _ := searchIDs(t, s, nil, "Patient", "family=fam0"); len(ids) != 10 {
		t.Fatalf("family=fam0 after reindex: %v", ids)
	}
	if ids, _ := searchIDs(t, s, nil, "Organization", "name=acme"); len(ids) != 0 {
		t.Fatal("the type filter let an Organization through")
	}
	if ids, _ := searchIDs(t, s, nil, "Patient", "family=fam24"); len(ids) != 0 {
		t.Fatal("a deleted resource was indexed")
	}
	// A partial batch replaces only its parameters: "family" entries stay.
	_, n, err := rx.ReindexBatch(ctx, &store.ReindexBatch{Types: []string{"Patient"}, Params: []string{"name"}, Limit: 100,
		Extract: func(*store.Record) ([]search.Entry, error) { return nil, nil }})
	if err != nil || n != 24 {
		t.Fatalf("partial batch: %d, %v", n, err)
	}
	if ids, _ := searchIDs(t, s, nil, "Patient", "name=fam01"); len(ids) != 0 {
		t.Fatalf("name entries survived their replacement: %v", ids)
	}
	if ids, _ := searchIDs(t, s, nil, "Patient", "family=fam01"); len(ids) != 1 {
		t.Fatalf("family entries lost by a partial batch: %v", ids)
	}
	// An update after a reindex still replaces every entry (the mask is right).
	mustPutBody(t, s, colorPatient("p01", "Other", ""), builtinExtract)
	if ids, _ := searchIDs(t, s, nil, "Patient", "family=fam01"); len(ids) != 0 {
		t.Fatalf("stale entries after an update: %v", ids)
	}
	// An extractor error aborts the batch and writes nothing.
	boom := errors.New("boom")
	if _, _, err := rx.ReindexBatch(ctx, &store.ReindexBatch{Limit: 100, Extract: func(*store.Record) ([]search.Entry, error) { return nil, boom }}); !errors.Is(err, boom) {
		t.Fatalf("extractor error: %v", err)
	}
	if ids, _ := searchIDs(t, s, nil, "Patient", "family=fam02"); len(ids) != 1 {
		t.Fatal("a failed batch changed the index")
	}
	for _, b := range []*store.ReindexBatch{nil, {Limit: 1}, {Limit: 0, Extract: extract}, {Limit: store.MaxReindexBatch + 1, Extract: extract}, {Limit: 1, Params: []string{""}, Extract: extract}} {
		if _, _, err := rx.ReindexBatch(ctx, b); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("batch %+v: %v, want ErrInvalid", b, err)
		}
	}
	if err := rx.DropIndex(ctx, []string{"Patient"}, "family"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := searchIDs(t, s, nil, "Patient", "family=fam"); len(ids) != 0 {
		t.Fatalf("family entries survived DropIndex: %v", ids)
	}
	if err := rx.DropIndex(ctx, nil, ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("DropIndex without code: %v", err)
	}
}

func testReindexJobs(t *testing.T, open Opener) {
	s := open(t)
	rx := reindexer(t, s)
	if _, err := rx.Job(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
	if err := rx.PutJob(ctx, "j1", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := rx.PutJob(ctx, "j1", []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := rx.PutJob(ctx, "j2", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := rx.PutJob(ctx, "", []byte(`{}`)); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("empty id: %v", err)
	}
	doc, err := rx.Job(ctx, "j1")
	if err != nil || string(doc) != `{"a":2}` {
		t.Fatalf("Job = %s, %v", doc, err)
	}
	all, err := rx.Jobs(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("Jobs = %v, %v", all, err)
	}
}

// managed opens a reindex Manager on s, closed at cleanup.
func managed(t *testing.T, s store.Store, opts reindex.Options) *reindex.Manager {
	t.Helper()
	m, err := reindex.Open(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// jobOf returns the newest job that indexes the colour parameter.
func jobOf(t *testing.T, m *reindex.Manager) *reindex.Job {
	t.Helper()
	jobs, err := m.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(jobs) - 1; i >= 0; i-- {
		if j := jobs[i]; len(j.Params) == 1 && j.Params[0].Code == "colour" {
			return j
		}
	}
	t.Fatal("no reindex job for the colour parameter")
	return nil
}

// waitProgress waits until job id has processed something.
func waitProgress(t *testing.T, m *reindex.Manager, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := m.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Processed > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the job made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitJob(t *testing.T, m *reindex.Manager, id string) *reindex.Job {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	j, err := m.Wait(c, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func testCustomParameter(t *testing.T, open Opener) {
	s := open(t)
	m := managed(t, s, reindex.Options{BatchSize: 10, Pause: 20 * time.Millisecond})
	hs := m.Store()
	colors := []string{"red", "green", "blue"}
	for i := 0; i < 90; i++ {
		mustPutBody(t, hs, colorPatient(fmt.Sprintf("p%03d", i), "Fam", colors[i%3]), m.Extract)
	}
	if _, err := searchIDs(t, hs, m.Custom(), "Patient", "colour=red"); !isParseCode(err, search.CodeUnknownParam) {
		t.Fatalf("colour before its definition: %v", err)
	}
	// Invalid definitions are refused, with the position of a bad expression.
	for _, bad := range [][]byte{
		colorParam("sp0", "active", "Patient.extension.where(url = "),
		[]byte(`{"resourceType":"SearchParameter","id":"sp0","url":"http://x/sp","status":"active","code":"family","base":["Patient"],"type":"string","expression":"Patient.name.family"}`),
		[]byte(`{"resourceType":"SearchParameter","id":"sp0","url":"http://x/sp","status":"active","code":"x","base":["Patient"],"type":"composite","expression":"Patient"}`),
		[]byte(`{"resourceType":"SearchParameter","id":"sp0","url":"http://x/sp","status":"active","code":"x","base":["NoSuchType"],"type":"token","expression":"Patient"}`),
	} {
		_, err := putBody(ctx, hs, bad, m.Extract)
		var de *search.DefinitionError
		if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &de) {
			t.Fatalf("bad definition accepted: %v", err)
		}
	}
	_, err := putBody(ctx, hs, colorParam("sp0", "active", "Patient.extension.where(url = "), m.Extract)
	var de *search.DefinitionError
	if errors.As(err, &de); de == nil || de.Pos == nil || de.Field != "expression" {
		t.Fatalf("bad expression: %v, want a position", err)
	}

	if _, err := m.Start(ctx, []string{"NoSuchType"}, nil); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Start with an unknown type: %v", err)
	}
	if _, err := m.Start(ctx, nil, []string{"http://example.org/none"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Start with an unknown url: %v", err)
	}
	if _, err := m.Job(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	mustPutBody(t, hs, colorParam("sp1", "active", colorExpr), m.Extract)
	// Registered: searches wait for the reindex (20 ms pauses between 9
	// batches), new writes index it at once.
	if _, err := searchIDs(t, hs, m.Custom(), "Patient", "colour=red"); !isParseCode(err, search.CodeIndexing) {
		t.Fatalf("colour during its reindex: %v, want %s", err, search.CodeIndexing)
	}
	mustPutBody(t, hs, colorPatient("new1", "Fam", "red"), m.Extract)
	if e := m.Extract(mustParse(t, colorPatient("x", "F", "red"))); !slices.ContainsFunc(e, func(e search.Entry) bool { return e.Param == "colour" && e.Code == "red" }) {
		t.Fatalf("a registered parameter is not extracted: %+v", e)
	}
	j := jobOf(t, m)
	if j.Total < 90 {
		t.Fatalf("job at start: %+v", j)
	}
	j = waitJob(t, m, j.ID)
	if j.Status != reindex.StatusCompleted || j.Percent() != 100 || j.Processed < 90 {
		t.Fatalf("job after wait: %+v", j)
	}
	ids, err := searchIDs(t, hs, m.Custom(), "Patient", "colour=red")
	if err != nil || len(ids) != 31 || !slices.Contains(ids, "new1") {
		t.Fatalf("colour=red: %d ids, %v", len(ids), err)
	}
	// A descriptive change keeps the index; a new expression reindexes.
	mustPutBody(t, hs, bytes.Replace(colorParam("sp1", "active", colorExpr), []byte("favourite colour"), []byte("favourite colour (v2)"), 1), m.Extract)
	if _, err := searchIDs(t, hs, m.Custom(), "Patient", "colour=red"); err != nil {
		t.Fatalf("an unchanged definition lost its index: %v", err)
	}

	// The registry survives a restart: the parameter is searchable at once.
	m.Close()
	m2 := managed(t, s, reindex.Options{})
	ids, err = searchIDs(t, m2.Store(), m2.Custom(), "Patient", "colour=blue")
	if err != nil || len(ids) != 30 {
		t.Fatalf("after reopen colour=blue: %d, %v", len(ids), err)
	}
	// Retiring removes it, and its entries.
	hs2 := m2.Store()
	mustPutBody(t, hs2, colorParam("sp1", "retired", colorExpr), m2.Extract)
	if _, err := searchIDs(t, hs2, m2.Custom(), "Patient", "colour=blue"); !isParseCode(err, search.CodeUnknownParam) {
		t.Fatalf("colour after retirement: %v", err)
	}
	for _, j := range mustJobs(t, m2) {
		if j.Kind == reindex.KindDrop {
			if j = waitJob(t, m2, j.ID); j.Status != reindex.StatusCompleted {
				t.Fatalf("drop job: %+v", j)
			}
		}
	}
	m2.Close()
	stale := &search.Query{Type: "Patient", Clauses: []search.Clause{{Param: &search.Param{Code: "colour", Type: search.TypeToken}, Values: []search.Value{{Code: "blue"}}}}}
	if res, err := s.Search(ctx, stale); err != nil || len(res.Matches) != 0 {
		t.Fatalf("entries of a retired parameter: %d, %v", len(res.Matches), err)
	}
	// Re-activated, then deleted.
	m3 := managed(t, s, reindex.Options{})
	hs3 := m3.Store()
	mustPutBody(t, hs3, colorParam("sp1", "active", colorExpr), m3.Extract)
	waitJob(t, m3, jobOf(t, m3).ID)
	if ids, err := searchIDs(t, hs3, m3.Custom(), "Patient", "colour=green"); err != nil || len(ids) != 30 {
		t.Fatalf("re-activated colour=green: %d, %v", len(ids), err)
	}
	if err := deleteRes(ctx, hs3, "SearchParameter", "sp1"); err != nil {
		t.Fatal(err)
	}
	if _, err := searchIDs(t, hs3, m3.Custom(), "Patient", "colour=green"); !isParseCode(err, search.CodeUnknownParam) {
		t.Fatalf("colour after deletion: %v", err)
	}
}

func mustJobs(t *testing.T, m *reindex.Manager) []*reindex.Job {
	t.Helper()
	jobs, err := m.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func mustParse(t *testing.T, body []byte) *fhir.Resource {
	t.Helper()
	r, err := fhir.Parse(body, fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func isParseCode(err error, code string) bool {
	var se *search.Error
	return errors.As(err, &se) && se.Code == code
}

// testReindexConcurrent reindexes thousands of resources while writers
// update and create them and readers search and read; afterwards every
// resource's colour entries match its final body.
func testReindexConcurrent(t *testing.T, open Opener) {
	n := 2000
	if testing.Short() || raceEnabled {
		n = 600
	}
	s := open(t)
	m := managed(t, s, reindex.Options{BatchSize: 50})
	hs := m.Store()
	colors := []string{"red", "green", "blue", "black"}
	final := sync.Map{} // id -> colour
	err := hs.Tx(ctx, func(tx store.Tx) error {
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("p%05d", i)
			body := colorPatient(id, "Fam", colors[i%4])
			res, _ := fhir.Parse(body, fhir.ParseOptions{})
			if _, err := tx.Put(ctx, &store.Write{Type: "Patient", ID: id, Version: 1, Method: "PUT", LastUpdated: t0, Body: body, Index: m.Extract(res)}); err != nil {
				return err
			}
			final.Store(id, colors[i%4])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustPutBody(t, hs, colorParam("sp1", "active", colorExpr), m.Extract)
	job := jobOf(t, m)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, reads atomic.Int64
	errs := make(chan error, 8)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("p%05d", r.IntN(n))
				if i%5 == 0 {
					id = fmt.Sprintf("w%d-%05d", w, i) // a create
				}
				c := colors[r.IntN(4)]
				if _, err := putBody(ctx, hs, colorPatient(id, "Fam", c), m.Extract); err != nil {
					if errors.Is(err, store.ErrConflict) {
						continue // the other writer won; nothing stored
					}
					errs <- err
					return
				}
				final.Store(id, c)
				writes.Add(1)
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(9, 9))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := hs.Read(ctx, "Patient", fmt.Sprintf("p%05d", r.IntN(n))); err != nil {
				errs <- err
				return
			}
			q := &search.Query{Type: "Patient", Count: 5, Clauses: []search.Clause{{Param: search.Lookup("Patient", "family"), Values: []search.Value{{Str: "fam"}}}}}
			if res, err := hs.Search(ctx, q); err != nil || res.Total < n {
				errs <- fmt.Errorf("search during reindex: total %v, %v", res, err)
				return
			}
			reads.Add(1)
		}
	}()
	j := waitJob(t, m, job.ID)
	// Keep writing a little after the job, then stop.
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if j.Status != reindex.StatusCompleted {
		t.Fatalf("job: %+v", j)
	}
	if writes.Load() == 0 || reads.Load() == 0 {
		t.Fatalf("no concurrent traffic: %d writes, %d reads", writes.Load(), reads.Load())
	}
	t.Logf("%d resources reindexed with %d concurrent writes and %d reads", j.Processed, writes.Load(), reads.Load())
	want := map[string][]string{}
	final.Range(func(k, v any) bool {
		want[v.(string)] = append(want[v.(string)], k.(string))
		return true
	})
	for _, c := range colors {
		got, err := searchIDs(t, hs, m.Custom(), "Patient", "colour="+c)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want[c])
		if !slices.Equal(got, want[c]) {
			t.Fatalf("colour=%s: %d ids, want %d", c, len(got), len(want[c]))
		}
	}
}

// testReindexResume stops a job half-way (the Manager closes) and checks
// that a new Manager resumes it from its cursor and completes it.
func testReindexResume(t *testing.T, open Opener) {
	s := open(t)
	m := managed(t, s, reindex.Options{BatchSize: 10, Pause: 30 * time.Millisecond})
	hs := m.Store()
	err := hs.Tx(ctx, func(tx store.Tx) error {
		for i := 0; i < 200; i++ {
			id := fmt.Sprintf("p%03d", i)
			body := colorPatient(id, "Fam", "red")
			if _, err := tx.Put(ctx, &store.Write{Type: "Patient", ID: id, Version: 1, Method: "PUT", LastUpdated: t0, Body: body}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustPutBody(t, hs, colorParam("sp1", "active", colorExpr), m.Extract)
	id := jobOf(t, m).ID
	waitProgress(t, m, id)
	m.Close()
	j, err := m.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != reindex.StatusRunning || j.Processed == 0 || j.Processed >= j.Total || j.Cursor == 0 {
		t.Fatalf("stopped job: %+v", j)
	}
	m2 := managed(t, s, reindex.Options{BatchSize: 50})
	if _, err := searchIDs(t, m2.Store(), m2.Custom(), "Patient", "colour=red"); !isParseCode(err, search.CodeIndexing) {
		t.Fatalf("colour while its job is unfinished: %v", err)
	}
	j2 := waitJob(t, m2, id)
	if j2.Status != reindex.StatusCompleted || j2.Processed != j2.Total {
		t.Fatalf("resumed job: %+v (stopped at %d)", j2, j.Processed)
	}
	ids, err := searchIDs(t, m2.Store(), m2.Custom(), "Patient", "colour=red")
	if err != nil || len(ids) != 200 {
		t.Fatalf("colour=red after resume: %d, %v", len(ids), err)
	}
}

// testReindexReplicas: two Managers on two handles of one database (two
// replicas). A parameter defined through one is, after the other's
// Refresh, searchable through both, including what the other wrote before
// it knew of the parameter; its deletion through the second reaches the
// first the same way.
func testReindexReplicas(t *testing.T, open Opener) {
	a := managed(t, open(t), reindex.Options{BatchSize: 25, Refresh: -1})
	b := managed(t, open(t), reindex.Options{BatchSize: 25, Refresh: -1})
	ha, hb := a.Store(), b.Store()
	for i := 0; i < 60; i++ {
		mustPutBody(t, ha, colorPatient(fmt.Sprintf("p%03d", i), "Fam", []string{"red", "blue"}[i%2]), a.Extract)
	}
	mustPutBody(t, ha, colorParam("sp1", "active", colorExpr), a.Extract)
	waitJob(t, a, jobOf(t, a).ID)
	// b does not know the parameter yet: it refuses it, and does not index
	// it in what it writes meanwhile.
	if _, err := searchIDs(t, hb, b.Custom(), "Patient", "colour=red"); !isParseCode(err, search.CodeUnknownParam) {
		t.Fatalf("colour on the other replica before its refresh: %v", err)
	}
	mustPutBody(t, hb, colorPatient("late", "Fam", "red"), b.Extract)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	waitJob(t, b, jobOf(t, b).ID)
	for name, m := range map[string]*reindex.Manager{"author": a, "replica": b} {
		ids, err := searchIDs(t, m.Store(), m.Custom(), "Patient", "colour=red")
		if err != nil || len(ids) != 31 || !slices.Contains(ids, "late") {
			t.Fatalf("%s: colour=red %d ids (late %v), %v", name, len(ids), slices.Contains(ids, "late"), err)
		}
	}
	// A second refresh with nothing new starts nothing.
	before := len(mustJobs(t, b))
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if after := len(mustJobs(t, b)); after != before {
		t.Fatalf("an idle refresh started %d jobs", after-before)
	}
	// Deleted through b: a forgets it at its refresh.
	if err := deleteRes(ctx, hb, "SearchParameter", "sp1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := searchIDs(t, ha, a.Custom(), "Patient", "colour=red"); !isParseCode(err, search.CodeUnknownParam) {
		t.Fatalf("colour after its deletion elsewhere: %v", err)
	}
}

// testReindexLease: a job's lease is exclusive until it ends or is
// released, and a job its runner left (closed mid-way) is taken over and
// finished by another replica's Refresh.
func testReindexLease(t *testing.T, open Opener) {
	s := open(t)
	rx := reindexer(t, s)
	if err := rx.PutJob(ctx, "j1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		owner string
		at    time.Time
		until time.Duration
		want  bool
	}{
		{"a", now, time.Minute, true},                       // free
		{"b", now.Add(time.Second), time.Minute, false},     // held by a
		{"a", now.Add(30 * time.Second), time.Minute, true}, // renewed by its holder
		{"b", now.Add(80 * time.Second), time.Minute, false},
		{"b", now.Add(91 * time.Second), time.Minute, true}, // a's lease ended
		{"b", now.Add(92 * time.Second), 0, true},           // released
		{"a", now.Add(93 * time.Second), time.Minute, true},
	} {
		got, err := rx.LeaseJob(ctx, "j1", c.owner, c.at, c.at.Add(c.until))
		if err != nil || got != c.want {
			t.Fatalf("lease by %s at +%s: %v, %v; want %v", c.owner, c.at.Sub(now), got, err, c.want)
		}
	}
	if ok, err := rx.LeaseJob(ctx, "nope", "a", now, now.Add(time.Minute)); err != nil || ok {
		t.Fatalf("lease of an unknown job: %v %v", ok, err)
	}

	// Takeover: a stops mid-job (its lease released); b resumes it.
	a := managed(t, s, reindex.Options{BatchSize: 10, Pause: 20 * time.Millisecond, Refresh: -1})
	b := managed(t, open(t), reindex.Options{BatchSize: 50, Refresh: -1})
	hs := a.Store()
	for i := 0; i < 100; i++ {
		mustPutBody(t, hs, colorPatient(fmt.Sprintf("q%03d", i), "Fam", "red"), a.Extract)
	}
	mustPutBody(t, hs, colorParam("sp1", "active", colorExpr), a.Extract)
	id := jobOf(t, a).ID
	waitProgress(t, a, id)
	a.Close()
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, b, id); j.Status != reindex.StatusCompleted || j.Processed != j.Total {
		t.Fatalf("job taken over: %+v", j)
	}
}

// BenchReindex loads replays of the Synthea corpus into s, then, b.N
// times, defines a new custom SearchParameter on Observation and times its
// reindex job (Observations only: the job scans the type by key). It
// reports reindexed resources per second, and the load rate of the same
// run for comparison (x-load: reindex rate / load rate).
func BenchReindex(b *testing.B, s store.Store, replays int) {
	c := LoadCorpus(b)
	start := time.Now()
	loaded := c.Load(b, s, replays)
	loadRate := float64(loaded) / time.Since(start).Seconds()
	m, err := reindex.Open(ctx, s, reindex.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	hs := m.Store()
	var done int64
	var took time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := fmt.Appendf(nil, `{"resourceType":"SearchParameter","id":"bench%d","url":"http://example.org/SearchParameter/bench%d","name":"b","status":"active",
"code":"bench-value-%d","base":["Observation"],"type":"quantity","expression":"Observation.value.ofType(Quantity)"}`, i, i, i)
		t0 := time.Now()
		if _, err := putBody(ctx, hs, body, m.Extract); err != nil {
			b.Fatal(err)
		}
		jobs, err := m.Jobs(ctx)
		if err != nil {
			b.Fatal(err)
		}
		j := jobs[len(jobs)-1]
		c, cancel := context.WithTimeout(ctx, 30*time.Minute)
		j, err = m.Wait(c, j.ID)
		cancel()
		if err != nil || j.Status != reindex.StatusCompleted {
			b.Fatalf("job: %+v, %v", j, err)
		}
		took += time.Since(t0)
		done += j.Processed
	}
	b.StopTimer()
	rate := float64(done) / took.Seconds()
	b.ReportMetric(rate, "resources/s")
	if loaded > 0 {
		b.ReportMetric(rate/loadRate, "x-load")
	}
}
