package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"phix/store"
	"phix/store/reindex"
)

// The job table's change feed (JobsSince), retention (FinishedJobs,
// PurgeJobs, reindex.Manager.PurgeJobs) and the Managers' incremental
// refresh; run by RunReindex.

// jobDoc is a job document as the Manager writes it.
func jobDoc(t *testing.T, j *reindex.Job) []byte {
	t.Helper()
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPutJob(t *testing.T, rx store.Reindexer, id string, doc []byte) {
	t.Helper()
	if err := rx.PutJob(ctx, id, doc); err != nil {
		t.Fatal(err)
	}
}

func jobIDs(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}

// testJobsSince: every put gets a new sequence number; a reader passing
// the last number it got sees each later put once, and a reader polling
// while two handles put concurrently ends with exactly the table.
func testJobsSince(t *testing.T, open Opener) {
	s := open(t)
	rx := reindexer(t, s)
	docs, last, err := rx.JobsSince(ctx, 0)
	if err != nil || len(docs) != 0 || last != 0 {
		t.Fatalf("empty table: %v, %d, %v", jobIDs(docs), last, err)
	}
	mustPutJob(t, rx, "j1", []byte(`{"n":1}`))
	mustPutJob(t, rx, "j2", []byte(`{"n":1}`))
	docs, l1, err := rx.JobsSince(ctx, 0)
	if err != nil || !slices.Equal(jobIDs(docs), []string{"j1", "j2"}) || l1 <= 0 {
		t.Fatalf("JobsSince(0) = %v, %d, %v", jobIDs(docs), l1, err)
	}
	if docs, l, err := rx.JobsSince(ctx, l1); err != nil || len(docs) != 0 || l != l1 {
		t.Fatalf("nothing new: %v, %d (want %d), %v", jobIDs(docs), l, l1, err)
	}
	mustPutJob(t, rx, "j1", []byte(`{"n":2}`))
	mustPutJob(t, rx, "j1", []byte(`{"n":3}`))
	docs, l2, err := rx.JobsSince(ctx, l1)
	if err != nil || !slices.Equal(jobIDs(docs), []string{"j1"}) || string(docs["j1"]) != `{"n":3}` || l2 <= l1 {
		t.Fatalf("after two puts of j1: %q, %d, %v", docs, l2, err)
	}
	// Numbers are not reused after a delete of the newest job.
	mustPutJob(t, rx, "done", []byte(`{"status":"completed"}`))
	_, l3, err := rx.JobsSince(ctx, l2)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rx.PurgeJobs(ctx, []string{"done"}, time.Now().Add(time.Hour), time.Now()); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	mustPutJob(t, rx, "after", []byte(`{}`))
	if docs, _, err := rx.JobsSince(ctx, l3); err != nil || !slices.Equal(jobIDs(docs), []string{"after"}) {
		t.Fatalf("a put after a purge of the newest: %v, %v", jobIDs(docs), err)
	}

	// Concurrent puts through two handles, a reader following the feed.
	other := reindexer(t, open(t))
	const writers, puts = 4, 25
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := []store.Reindexer{rx, other}[w%2]
			for i := 0; i < puts; i++ {
				if err := h.PutJob(ctx, fmt.Sprintf("w%d-%d", w, i%5), fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string][]byte{}
	seq := int64(0)
	follow := func() {
		t.Helper()
		docs, l, err := other.JobsSince(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if l < seq {
			t.Fatalf("sequence went back from %d to %d", seq, l)
		}
		maps.Copy(seen, docs)
		seq = l
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			follow()
		}
	}
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	follow()
	all, err := rx.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(seen, all, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("the feed followed during concurrent puts differs from the table:\nfeed  %q\ntable %q", seen, all)
	}
}

// testJobPurgeStore: only jobs finished before the cutoff, not leased,
// are deleted; running jobs, documents without a status and jobs put
// again as running are kept.
func testJobPurgeStore(t *testing.T, open Opener) {
	s := open(t)
	rx := reindexer(t, s)
	now := time.Now()
	for id, doc := range map[string]string{
		"running":   `{"status":"running"}`,
		"completed": `{"status":"completed"}`,
		"failed":    `{"status":"failed","kind":"encrypt"}`,
		"leased":    `{"status":"completed"}`,
		"resumed":   `{"status":"failed"}`,
		"nostatus":  `{"a":1}`,
	} {
		mustPutJob(t, rx, id, []byte(doc))
	}
	if ok, err := rx.LeaseJob(ctx, "leased", "elsewhere", now, now.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	mustPutJob(t, rx, "resumed", []byte(`{"status":"running"}`))
	if docs, err := rx.FinishedJobs(ctx, now.Add(-time.Hour)); err != nil || len(docs) != 0 {
		t.Fatalf("finished an hour ago: %v, %v", jobIDs(docs), err)
	}
	later := now.Add(time.Hour)
	docs, err := rx.FinishedJobs(ctx, later)
	if err != nil || !slices.Equal(jobIDs(docs), []string{"completed", "failed", "leased"}) {
		t.Fatalf("finished before the cutoff: %v, %v", jobIDs(docs), err)
	}
	// Not old enough: nothing goes.
	ids := []string{"running", "completed", "failed", "leased", "resumed", "nostatus", "unknown"}
	if n, err := rx.PurgeJobs(ctx, ids, now.Add(-time.Hour), time.Now()); err != nil || n != 0 {
		t.Fatalf("purge of recent jobs: %d, %v", n, err)
	}
	if n, err := rx.PurgeJobs(ctx, ids, later, time.Now()); err != nil || n != 2 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	all, err := rx.Jobs(ctx)
	if err != nil || !slices.Equal(jobIDs(all), []string{"leased", "nostatus", "resumed", "running"}) {
		t.Fatalf("kept: %v, %v", jobIDs(all), err)
	}
	if _, err := rx.Job(ctx, "completed"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("purged job: %v", err)
	}
	// Once its lease has ended, the leased one goes too.
	if n, err := rx.PurgeJobs(ctx, ids, later, later.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("purge after the lease: %d, %v", n, err)
	}
	if n, err := rx.PurgeJobs(ctx, nil, later, later); err != nil || n != 0 {
		t.Fatalf("purge of no ids: %d, %v", n, err)
	}
}

// testJobPurgeManager: the Manager's purge removes old finished jobs of
// every kind but keeps the newest completed and the newest finished job of
// each custom parameter definition and every running job; after a restart
// the parameter is searchable at once, from the kept job.
func testJobPurgeManager(t *testing.T, open Opener) {
	s := open(t)
	rx := reindexer(t, s)
	m := managed(t, s, reindex.Options{BatchSize: 50, Refresh: -1})
	hs := m.Store()
	for i := 0; i < 20; i++ {
		mustPutBody(t, hs, colorPatient(fmt.Sprintf("p%02d", i), "Fam", "red"), m.Extract)
	}
	mustPutBody(t, hs, colorParam("sp1", "active", colorExpr), m.Extract)
	first := waitJob(t, m, jobOf(t, m).ID)
	again, err := m.Start(ctx, nil, []string{first.Params[0].URL})
	if err != nil {
		t.Fatal(err)
	}
	newest := waitJob(t, m, again.ID)
	full, err := m.Start(ctx, []string{"Patient"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, m, full.ID)
	if first.Status != reindex.StatusCompleted || newest.Status != reindex.StatusCompleted {
		t.Fatalf("jobs: %+v %+v", first, newest)
	}
	// A failed job of the same definition, newer: kept too (its status
	// explains a pending parameter). An older failed one is not.
	ref := newest.Params[0]
	failedNew := &reindex.Job{ID: "failed-new", Kind: reindex.KindReindex, Status: reindex.StatusFailed, Params: []reindex.ParamRef{ref},
		Created: newest.Updated, Updated: newest.Updated.Add(time.Second), Error: "a reindex batch failed repeatedly"}
	failedOld := &reindex.Job{ID: "failed-old", Kind: reindex.KindReindex, Status: reindex.StatusFailed, Params: []reindex.ParamRef{ref},
		Created: first.Created, Updated: first.Created}
	running := &reindex.Job{ID: "running", Kind: reindex.KindReindex, Status: reindex.StatusRunning, Types: []string{"Patient"},
		Created: first.Created, Updated: first.Created}
	mustPutJob(t, rx, failedNew.ID, jobDoc(t, failedNew))
	mustPutJob(t, rx, failedOld.ID, jobDoc(t, failedOld))
	// Leased elsewhere, so the Managers leave it alone.
	mustPutJob(t, rx, running.ID, jobDoc(t, running))
	if ok, err := rx.LeaseJob(ctx, running.ID, "elsewhere", time.Now(), time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	mustPutJob(t, rx, "enc-done", []byte(`{"kind":"encrypt","id":"enc-done","status":"completed"}`))
	mustPutJob(t, rx, "enc-running", []byte(`{"kind":"encrypt","id":"enc-running","status":"running"}`))
	if err := m.Refresh(ctx); err != nil { // m learns of the jobs put beside it
		t.Fatal(err)
	}

	// Within retention nothing goes.
	if n, err := m.PurgeJobs(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("purge within retention: %d, %v", n, err)
	}
	// Everything finished counts as old.
	n, err := m.PurgeJobs(ctx, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	all, err := rx.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"enc-running", failedNew.ID, newest.ID, running.ID}
	slices.Sort(want)
	if got := jobIDs(all); !slices.Equal(got, want) || n != 4 {
		t.Fatalf("after the purge (%d deleted): %v, want %v (first %s, full %s)", n, got, want, first.ID, full.ID)
	}
	if n, err := m.PurgeJobs(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("second purge: %d, %v", n, err)
	}
	if _, err := m.Job(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("status of a purged job: %v", err)
	}
	m.Close()

	// Restarted: the kept job makes colour searchable without a new job.
	m2 := managed(t, s, reindex.Options{Refresh: -1})
	ids, err := searchIDs(t, m2.Store(), m2.Custom(), "Patient", "colour=red")
	if err != nil || len(ids) != 20 {
		t.Fatalf("colour=red after purge and restart: %d, %v", len(ids), err)
	}
	if got := len(mustJobs(t, m2)); got != 3 {
		t.Fatalf("the restart started jobs: %d jobs", got)
	}
}

// testJobPurgeReplicas: two Managers purging at once while a third handle
// completes new jobs of the parameter: every purge succeeds, each job is
// deleted once, and a completed job of the parameter always survives (the
// newest put).
func testJobPurgeReplicas(t *testing.T, open Opener) {
	s := open(t)
	rx := reindexer(t, s)
	ref := reindex.ParamRef{URL: "http://example.org/sp", Code: "sp", Fingerprint: "f1"}
	base := time.Now().Add(-time.Hour).UTC()
	put := func(h store.Reindexer, i int) {
		t.Helper()
		j := &reindex.Job{ID: fmt.Sprintf("c%04d", i), Kind: reindex.KindReindex, Status: reindex.StatusCompleted,
			Params: []reindex.ParamRef{ref}, Created: base, Updated: base.Add(time.Duration(i) * time.Second)}
		mustPutJob(t, h, j.ID, jobDoc(t, j))
	}
	const old = 40
	for i := 0; i < old; i++ {
		put(rx, i)
		mustPutJob(t, rx, fmt.Sprintf("e%04d", i), fmt.Appendf(nil, `{"kind":"encrypt","id":"e%04d","status":"failed"}`, i))
	}
	a := managed(t, open(t), reindex.Options{Refresh: -1})
	b := managed(t, open(t), reindex.Options{Refresh: -1})
	writer := reindexer(t, open(t))
	const rounds = 8
	var deleted atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 3*rounds)
	for _, m := range []*reindex.Manager{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if err := m.Refresh(ctx); err != nil {
					errc <- err
					return
				}
				n, err := m.PurgeJobs(ctx, time.Now().Add(time.Hour))
				if err != nil {
					errc <- err
					return
				}
				deleted.Add(n)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := old; i < old+rounds; i++ {
			put(writer, i)
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	all, err := rx.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprintf("c%04d", old+rounds-1)
	if _, ok := all[last]; !ok {
		t.Fatalf("the newest completed job %s was purged; left %v", last, jobIDs(all))
	}
	if got := int64(old + old + rounds - len(all)); got != deleted.Load() {
		t.Fatalf("purges report %d deleted, the table lost %d", deleted.Load(), got)
	}
	// A last purge with both views up to date leaves only the newest.
	for _, m := range []*reindex.Manager{a, b} {
		if err := m.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.PurgeJobs(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if all, err := rx.Jobs(ctx); err != nil || !slices.Equal(jobIDs(all), []string{last}) {
		t.Fatalf("after the last purge: %v, %v", jobIDs(all), err)
	}
}

// countingStore counts what a Manager reads from the job table.
type countingStore struct {
	store.Store
	store.Reindexer
	fullReads atomic.Int64 // Jobs, or JobsSince(0)
	mu        sync.Mutex
	read      []string // ids JobsSince returned since the last reset
}

func (c *countingStore) Jobs(cx context.Context) (map[string][]byte, error) {
	c.fullReads.Add(1)
	return c.Reindexer.Jobs(cx)
}

func (c *countingStore) JobsSince(cx context.Context, seq int64) (map[string][]byte, int64, error) {
	if seq == 0 {
		c.fullReads.Add(1)
	}
	docs, last, err := c.Reindexer.JobsSince(cx, seq)
	c.mu.Lock()
	c.read = append(c.read, jobIDs(docs)...)
	c.mu.Unlock()
	return docs, last, err
}

func (c *countingStore) reset() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.read
	c.read = nil
	c.fullReads.Store(0)
	return r
}

// testJobsIncrementalRefresh: a Manager reads the whole job table once, at
// Open; each Refresh then reads only the jobs put since its last one: none
// when idle, the job another replica left running (which it takes over and
// completes), never the old finished jobs. A Manager opened afresh (a
// restart, however many refreshes it missed) reads the table again and
// converges.
func testJobsIncrementalRefresh(t *testing.T, open Opener) {
	s := open(t)
	rx := reindexer(t, s)
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("old%02d", i)
		mustPutJob(t, rx, id, fmt.Appendf(nil, `{"kind":"encrypt","id":%q,"status":"completed"}`, id))
	}
	cs := &countingStore{Store: s, Reindexer: rx}
	a := managed(t, cs, reindex.Options{BatchSize: 20, Refresh: -1})
	if got := cs.reset(); len(got) != 30 {
		t.Fatalf("Open read %d jobs, want the 30 stored", len(got))
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := cs.reset(); len(got) != 0 {
		t.Fatalf("an idle refresh read %v", got)
	}
	// Another replica writes Patients and leaves a job running (its
	// process died; no lease).
	other := open(t)
	hs := reindexer(t, other)
	for i := 0; i < 50; i++ {
		mustPutBody(t, other, colorPatient(fmt.Sprintf("p%02d", i), "Fam", "red"), nil)
	}
	now := time.Now().UTC()
	orphan := &reindex.Job{ID: "orphan", Kind: reindex.KindReindex, Status: reindex.StatusRunning, Types: []string{"Patient"},
		Total: 50, Created: now, Updated: now}
	mustPutJob(t, hs, orphan.ID, jobDoc(t, orphan))
	mustPutJob(t, hs, "old00", []byte(`{"kind":"encrypt","id":"old00","status":"failed"}`)) // changed again
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	got := cs.reset()
	slices.Sort(got)
	if !slices.Equal(got, []string{"old00", "orphan"}) || cs.fullReads.Load() != 0 {
		t.Fatalf("refresh read %v (full reads %d), want old00 and orphan only", got, cs.fullReads.Load())
	}
	if j := waitJob(t, a, orphan.ID); j.Status != reindex.StatusCompleted || j.Processed != 50 {
		t.Fatalf("orphan taken over: %+v", j)
	}
	// The refresh after reads only the taken-over job's own puts.
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range cs.reset() {
		if id != orphan.ID {
			t.Fatalf("refresh after the takeover read %s", id)
		}
	}
	a.Close()

	// Missed refreshes: while no Manager runs, a second job is left
	// running; the next process converges at Open and runs it.
	second := &reindex.Job{ID: "second", Kind: reindex.KindReindex, Status: reindex.StatusRunning, Types: []string{"Patient"},
		Total: 50, Created: now, Updated: now}
	mustPutJob(t, hs, second.ID, jobDoc(t, second))
	cs2 := &countingStore{Store: s, Reindexer: rx}
	b := managed(t, cs2, reindex.Options{BatchSize: 20, Refresh: -1})
	if got := cs2.reset(); len(got) != 32 {
		t.Fatalf("restart read %d jobs, want all 32", len(got))
	}
	if j := waitJob(t, b, second.ID); j.Status != reindex.StatusCompleted || j.Processed != 50 {
		t.Fatalf("second job after restart: %+v", j)
	}
}

// BackfillDocs are the job documents a migration test stores before
// migration 7 (id -> document); CheckJobBackfill checks what the migration
// made of them.
var BackfillDocs = map[string]string{
	"done":     `{"id":"done","kind":"reindex","status":"completed"}`,
	"failed":   `{"kind":"encrypt","id":"failed","status":"failed"}`,
	"running":  `{"id":"running","kind":"reindex","status":"running"}`,
	"nostatus": `{"a":1}`,
}

// CheckJobBackfill: after migration 7 every job stored before it is in the
// change feed (seq 1), the finished ones are stamped with the upgrade time
// (purgeable a retention period later, not at once), and later puts get
// higher numbers.
func CheckJobBackfill(t *testing.T, s store.Store) {
	t.Helper()
	rx := reindexer(t, s)
	docs, last, err := rx.JobsSince(ctx, 0)
	if err != nil || !slices.Equal(jobIDs(docs), []string{"done", "failed", "nostatus", "running"}) || last != 1 {
		t.Fatalf("feed after the migration: %v, %d, %v", jobIDs(docs), last, err)
	}
	if docs, err := rx.FinishedJobs(ctx, time.Now().Add(-time.Hour)); err != nil || len(docs) != 0 {
		t.Fatalf("finished an hour before the upgrade: %v, %v", jobIDs(docs), err)
	}
	if docs, err := rx.FinishedJobs(ctx, time.Now().Add(time.Hour)); err != nil || !slices.Equal(jobIDs(docs), []string{"done", "failed"}) {
		t.Fatalf("finished: %v, %v", jobIDs(docs), err)
	}
	mustPutJob(t, rx, "new", []byte(`{}`))
	if docs, l, err := rx.JobsSince(ctx, 1); err != nil || !slices.Equal(jobIDs(docs), []string{"new"}) || l <= 1 {
		t.Fatalf("a put after the migration: %v, %d, %v", jobIDs(docs), l, err)
	}
}
