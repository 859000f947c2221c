// Package reindex keeps the custom SearchParameters of a store and rebuilds
// its search index in the background. A Manager wraps a store.Store that
// implements store.Reindexer (store/sqlite, store/postgres):
//
//   - it rebuilds the runtime registry (search.Custom) from the stored
//     SearchParameter resources when it opens;
//   - its Store() wraps the store's transactions so that writing a
//     SearchParameter registers (or, deleted or retired, removes) the
//     parameter once the transaction commits, and starts its reindex job;
//   - it runs reindex jobs in bounded batches (keyset pagination on the
//     store's internal key), persisting each job's cursor, so a job
//     survives a restart and resumes where it stopped.
//
// A new parameter is indexed by every write from the moment it is
// registered and becomes searchable when its job completes. See
// docs/reindex.md.
package reindex

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"phix/fhir"
	"phix/fhir/search"
	"phix/store"
)

// Job kinds.
const (
	KindReindex = "reindex"
	KindDrop    = "drop"
)

// ownKind reports whether a job document of the store's job table is a
// Manager's: the table also keeps other background jobs (the FHIR
// server's $encrypt), which the Manager neither lists nor runs.
func ownKind(kind string) bool { return kind == KindReindex || kind == KindDrop }

// Job states.
const (
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// Job is the persisted state of one reindex job.
type Job struct {
	ID string `json:"id"`
	// Kind is KindReindex, or KindDrop for the removal of a retired
	// parameter's entries (Params names its code).
	Kind   string     `json:"kind"`
	Status string     `json:"status"`
	Types  []string   `json:"types,omitempty"`  // resource types scanned; empty: all
	Params []ParamRef `json:"params,omitempty"` // custom parameters indexed; empty: every entry
	// Cursor is the last internal resource key processed (keyset
	// pagination); the job resumes after it.
	Cursor    int64     `json:"cursor"`
	Processed int64     `json:"processed"`
	Total     int64     `json:"total"` // resources to scan, counted when the job started
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Error     string    `json:"error,omitempty"` // a stable description, never content
}

// ParamRef names a custom parameter a job indexes: the SearchParameter's
// URL and code, and the fingerprint of the definition (code, type, bases,
// targets, expression): a definition that indexes differently needs its own
// job, a descriptive edit does not.
type ParamRef struct {
	URL         string `json:"url"`
	Code        string `json:"code"`
	Fingerprint string `json:"fingerprint"`
}

// Percent is the share of the job done, 0 to 100 (100 only when completed).
func (j *Job) Percent() float64 {
	if j.Status == StatusCompleted {
		return 100
	}
	if j.Total <= 0 {
		return 0
	}
	p := float64(j.Processed) * 100 / float64(j.Total)
	return min(p, 99.9)
}

// Options tune a Manager. Zero values take the defaults.
type Options struct {
	// BatchSize is the resources per reindex transaction (default 200, at
	// most store.MaxReindexBatch).
	BatchSize int
	// Pause is a rest between batches, leaving the writer lock to other
	// writers (default 0: the lock is released between batches anyway).
	Pause time.Duration
	// Logger gets job start, completion and failure lines (never content).
	Logger *slog.Logger
	// Refresh is how often the Manager applies the SearchParameters that
	// another process sharing the database (a replica) created, changed
	// or deleted (default 10 s; negative: only at Open). A replica that
	// learns of a new parameter indexes it as its author did: it registers
	// it and runs its own job, which also covers what it wrote before it
	// knew of the parameter, and the parameter is searchable through it
	// when that job completes.
	Refresh time.Duration
	// Retention is how long finished jobs (completed or failed, of every
	// kind in the job table, $encrypt's too) are kept before one of the
	// processes sharing the database deletes them (default 30 days;
	// negative: kept forever). The jobs that keep a custom parameter
	// searchable after a restart are never deleted (PurgeJobs).
	Retention time.Duration
}

// DefaultRetention is the default Options.Retention.
const DefaultRetention = 30 * 24 * time.Hour

// purgeEvery is how often a Manager purges finished jobs; the first purge
// runs purgeDelay after Open, out of the way of the start.
const (
	purgeEvery = time.Hour
	purgeDelay = time.Minute
)

// refreshOverlap re-reads the SearchParameter history this far back on
// every refresh: a transaction stamped earlier can commit later. Versions
// already applied are skipped.
const refreshOverlap = time.Minute

// Extractor computes every index entry (built-in and custom) of a stored
// version for a reindex job. The default parses the body; a server that
// stores sealed bodies sets its own (SetExtractor), which can open them.
type Extractor func(ctx context.Context, rec *store.Record) ([]search.Entry, error)

// Manager owns the custom parameter registry of one store and its jobs.
type Manager struct {
	st     store.Store
	rx     store.Reindexer
	custom *search.Custom
	opts   Options
	log    *slog.Logger

	// regMu orders registration against writes: a write transaction holds
	// it shared from extraction to commit, a registration exclusively, so
	// every write that commits after a parameter is registered has indexed
	// it, and every write before is seen by the reindex scan.
	regMu sync.RWMutex

	extract atomic.Pointer[Extractor] // nil: parse the stored body

	mu      sync.Mutex
	running map[string]bool
	defIDs  map[string]string // SearchParameter id -> url of the registered parameter
	drops   map[string]int    // parameter code -> entry drops running
	// versions are the SearchParameter versions applied, by id, and
	// seenUpTo the newest lastUpdated among them (Refresh).
	versions map[string]int64
	seenUpTo time.Time
	// jobSeq is the job table's change sequence number up to which this
	// Manager has read (store.Reindexer.JobsSince): a refresh reads only
	// the jobs put after it.
	jobSeq int64
	// others are the running reindex jobs seen in the job table, which
	// Refresh takes over when their lease ends; finished holds, per
	// parameter definition, the newest finished and the newest completed
	// job seen (PurgeJobs keeps them).
	others   map[string]*Job
	finished map[finishedKey]jobStamp
	// retention is Options.Retention (negative: keep forever).
	retention atomic.Int64
	// owner names this Manager in job leases (store.Reindexer.LeaseJob).
	owner  string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ErrNotReindexable is returned by Open for a store without store.Reindexer.
var ErrNotReindexable = errors.New("reindex: the store cannot reindex")

// Open rebuilds the registry from the stored SearchParameters, marks the
// parameters whose job completed searchable, starts a job for any active
// parameter without one, and resumes unfinished jobs.
func Open(ctx context.Context, st store.Store, opts Options) (*Manager, error) {
	rx, ok := st.(store.Reindexer)
	if !ok {
		return nil, ErrNotReindexable
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 200
	}
	opts.BatchSize = min(opts.BatchSize, store.MaxReindexBatch)
	m := &Manager{st: st, rx: rx, custom: search.NewCustom(), opts: opts, log: opts.Logger,
		running: map[string]bool{}, defIDs: map[string]string{}, drops: map[string]int{}, versions: map[string]int64{},
		others: map[string]*Job{}, finished: map[finishedKey]jobStamp{}, owner: newID()}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.SetRetention(opts.Retention)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if err := m.loadDefinitions(ctx); err != nil {
		return nil, err
	}
	// The whole table once; Refresh then reads only what changed.
	docs, seq, err := rx.JobsSince(ctx, 0)
	if err != nil {
		return nil, err
	}
	m.jobSeq = seq
	var resume []*Job
	covered := map[ParamRef]bool{}
	for _, doc := range docs {
		var j Job
		if err := json.Unmarshal(doc, &j); err != nil {
			return nil, fmt.Errorf("reindex: corrupt job document: %w", err)
		}
		if !ownKind(j.Kind) {
			continue
		}
		m.noteJob(&j)
		switch j.Status {
		case StatusCompleted:
			if j.Kind == KindDrop {
				continue
			}
			for _, p := range j.Params {
				m.custom.SetReady(p.URL, p.Fingerprint)
			}
		case StatusRunning:
			resume = append(resume, &j)
		}
		if j.Status != StatusFailed && j.Kind != KindDrop {
			for _, p := range j.Params {
				covered[p] = true
			}
		}
	}
	for _, j := range resume {
		m.launch(j)
	}
	for _, p := range m.custom.Params() {
		_, version, ready := m.custom.ByURL(p.URL)
		ref := ParamRef{URL: p.URL, Code: p.Code, Fingerprint: version}
		if !ready && !covered[ref] {
			if _, err := m.start(ctx, p.Base, []ParamRef{ref}); err != nil {
				return nil, err
			}
		}
	}
	if opts.Refresh >= 0 {
		every := opts.Refresh
		if every == 0 {
			every = 10 * time.Second
		}
		m.wg.Add(1)
		go m.refreshLoop(every)
	}
	m.wg.Add(1)
	go m.purgeLoop()
	return m, nil
}

// SetRetention replaces Options.Retention (0: the default, 30 days;
// negative: keep finished jobs forever).
func (m *Manager) SetRetention(d time.Duration) {
	if d == 0 {
		d = DefaultRetention
	}
	m.retention.Store(int64(d))
}

// Retention returns how long finished jobs are kept (negative: forever).
func (m *Manager) Retention() time.Duration { return time.Duration(m.retention.Load()) }

func (m *Manager) purgeLoop() {
	defer m.wg.Done()
	wait := purgeDelay
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = purgeEvery
		keep := time.Duration(m.retention.Load())
		if keep < 0 {
			continue
		}
		n, err := m.PurgeJobs(m.ctx, time.Now().Add(-keep))
		switch {
		case err != nil && m.ctx.Err() == nil:
			m.log.Warn("reindex: purge of finished jobs failed; retrying later", "err", err)
		case n > 0:
			m.log.Info("reindex: finished jobs purged", "jobs", n)
		}
	}
}

// finishedKey names a kept finished job: per parameter definition, the
// newest finished job (its status page explains a pending parameter) and
// the newest completed one (it makes the parameter searchable at Open).
type finishedKey struct {
	ref       ParamRef
	completed bool
}

// jobStamp orders finished jobs: by Updated, then id, the same on every
// process.
type jobStamp struct {
	id      string
	updated time.Time
}

func (a jobStamp) newer(b jobStamp) bool {
	if !a.updated.Equal(b.updated) {
		return a.updated.After(b.updated)
	}
	return a.id > b.id
}

// noteJob records a job document of the Manager's kinds read from or
// written to the job table.
func (m *Manager) noteJob(j *Job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.Kind != KindReindex {
		return
	}
	if j.Status == StatusRunning {
		c := *j // the caller's copy may be run and changed meanwhile
		m.others[j.ID] = &c
		return
	}
	delete(m.others, j.ID)
	st := jobStamp{id: j.ID, updated: j.Updated}
	for _, p := range j.Params {
		keys := []finishedKey{{ref: p}}
		if j.Status == StatusCompleted {
			keys = append(keys, finishedKey{ref: p, completed: true})
		}
		for _, k := range keys {
			if cur, ok := m.finished[k]; !ok || st.newer(cur) {
				m.finished[k] = st
			}
		}
	}
}

// kept reports whether a finished job is the newest finished or newest
// completed job of one of its parameters.
func (m *Manager) kept(j *Job) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range j.Params {
		for _, completed := range []bool{false, true} {
			if cur, ok := m.finished[finishedKey{ref: p, completed: completed}]; ok && cur.id == j.ID {
				return true
			}
		}
	}
	return false
}

// PurgeJobs deletes the jobs of the job table that finished before
// before, of every kind (its own reindex and drop jobs, the server's
// $encrypt jobs), except the newest finished and the newest completed
// reindex job of each custom parameter definition: the completed one makes
// the parameter searchable again when a process opens (and its status stays
// readable), the finished one tells why a parameter is still pending. A
// job is deleted only if a newer one of its kind exists for each of its
// parameters, and the store deletes it only if it is still finished before
// before and not leased, so any number of processes may purge at once.
// It returns how many jobs it deleted. The Manager runs it every hour with
// before = now - Options.Retention.
func (m *Manager) PurgeJobs(ctx context.Context, before time.Time) (int64, error) {
	docs, err := m.rx.FinishedJobs(ctx, before)
	if err != nil {
		return 0, err
	}
	jobs := map[string]*Job{}
	for id, doc := range docs {
		var j Job
		if json.Unmarshal(doc, &j) != nil {
			continue // not a job this code wrote: kept
		}
		jobs[id] = &j
		if ownKind(j.Kind) {
			m.noteJob(&j)
		}
	}
	ids := make([]string, 0, len(jobs))
	for id, j := range jobs {
		if ownKind(j.Kind) && m.kept(j) {
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return m.rx.PurgeJobs(ctx, ids, before, time.Now())
}

func (m *Manager) refreshLoop(every time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			if err := m.Refresh(m.ctx); err != nil && m.ctx.Err() == nil {
				m.log.Warn("reindex: refresh of SearchParameters failed; retrying", "err", err)
			}
		}
	}
}

// Refresh applies the SearchParameter versions other processes sharing
// the database committed since the last refresh (Options.Refresh calls it
// periodically): new and changed definitions are registered and indexed
// by a job of this process, deleted or retired ones removed. It reads only
// the jobs put since the last refresh (store.Reindexer.JobsSince; Open
// read them all) and takes over the running jobs whose runner stopped.
func (m *Manager) Refresh(ctx context.Context) error {
	const page = 500
	m.mu.Lock()
	since := m.seenUpTo
	m.mu.Unlock()
	if !since.IsZero() {
		since = since.Add(-refreshOverlap)
	}
	latest := map[string]*store.Record{}
	var newest time.Time
	for off := 0; ; off += page {
		recs, _, err := m.st.History(ctx, store.HistoryOptions{Type: "SearchParameter", Since: since, Count: page, Offset: off})
		if err != nil {
			return fmt.Errorf("reindex: refresh: %w", err)
		}
		for _, r := range recs {
			if cur := latest[r.ID]; cur == nil || r.Version > cur.Version {
				latest[r.ID] = r
			}
			if r.LastUpdated.After(newest) {
				newest = r.LastUpdated
			}
		}
		if len(recs) < page {
			break
		}
	}
	recs := make([]*store.Record, 0, len(latest))
	for _, r := range latest {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *store.Record) int { return a.LastUpdated.Compare(b.LastUpdated) })
	for _, r := range recs {
		m.mu.Lock()
		known := m.versions[r.ID]
		m.mu.Unlock()
		if r.Version > known {
			m.apply(ctx, r)
		}
	}
	m.mu.Lock()
	if newest.After(m.seenUpTo) {
		m.seenUpTo = newest
	}
	m.mu.Unlock()
	// The jobs put since the last refresh only: a job that stays running
	// without being put (its process stopped) is remembered in m.others.
	m.mu.Lock()
	seq := m.jobSeq
	m.mu.Unlock()
	docs, last, err := m.rx.JobsSince(ctx, seq)
	if err != nil {
		return fmt.Errorf("reindex: refresh: %w", err)
	}
	for _, doc := range docs {
		var j Job
		if json.Unmarshal(doc, &j) == nil && ownKind(j.Kind) {
			m.noteJob(&j)
		}
	}
	m.mu.Lock()
	m.jobSeq = max(m.jobSeq, last)
	var orphans []*Job
	for id, j := range m.others {
		if !m.running[id] {
			orphans = append(orphans, j)
		}
	}
	m.mu.Unlock()
	// Jobs left running by a process that stopped: resumed here once
	// their lease has ended (launch takes it, or returns at once), from
	// their state read again under the lease.
	for _, j := range orphans {
		m.takeOver(j)
	}
	return nil
}

// applied records that version rec of a SearchParameter has been applied.
func (m *Manager) applied(rec *store.Record) {
	m.mu.Lock()
	if rec.Version > m.versions[rec.ID] {
		m.versions[rec.ID] = rec.Version
	}
	if rec.LastUpdated.After(m.seenUpTo) {
		m.seenUpTo = rec.LastUpdated
	}
	m.mu.Unlock()
}

// loadDefinitions registers every active stored SearchParameter (not
// searchable until its job is known to have completed).
func (m *Manager) loadDefinitions(ctx context.Context) error {
	const page = 500
	for off := 0; ; off += page {
		res, err := m.st.Search(ctx, &search.Query{Type: "SearchParameter", Count: page, Offset: off, Total: search.TotalNone})
		if err != nil {
			return fmt.Errorf("reindex: load SearchParameters: %w", err)
		}
		for _, rec := range res.Matches {
			m.applied(rec)
			d, err := definitionOf(rec)
			if err != nil || !d.Active() {
				// Stored before validation existed, or not active: not
				// registered. A bad one was refused at write time.
				m.log.Warn("reindex: stored SearchParameter not registered", "id", rec.ID, "active", err == nil)
				continue
			}
			if m.custom.Conflict(d) {
				m.log.Warn("reindex: stored SearchParameter conflicts with another", "id", rec.ID)
				continue
			}
			if err := m.custom.Register(d, fingerprint(d.Param), false); err != nil {
				return err
			}
			m.defIDs[rec.ID] = d.Param.URL
		}
		if len(res.Matches) < page {
			return nil
		}
	}
}

func definitionOf(rec *store.Record) (*search.Definition, error) {
	res, err := fhir.Parse(rec.Body, fhir.ParseOptions{})
	if err != nil {
		return nil, err
	}
	return search.ParseDefinition(res.Object)
}

// fingerprint identifies what a definition indexes.
func fingerprint(p *search.Param) string {
	h := sha256.New()
	for _, f := range [][]string{{p.Code, string(p.Type), p.Expression}, p.Base, p.Targets} {
		for _, s := range f {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Custom returns the runtime registry, for search.ParseOptions.Custom.
func (m *Manager) Custom() *search.Custom { return m.custom }

// Reindexer returns the store's job table and reindexing interface, which
// other background jobs of the server (its $encrypt) share.
func (m *Manager) Reindexer() store.Reindexer { return m.rx }

// Extract returns the index entries of r: the built-in parameters' and the
// custom ones'. Call it inside a transaction of Store(), so a parameter
// registered meanwhile cannot be missed.
func (m *Manager) Extract(r *fhir.Resource) []search.Entry {
	return append(search.Extract(r), m.custom.Extract(r)...)
}

// Validate checks a SearchParameter resource before it is written: a
// *search.DefinitionError for a bad definition, including a code that
// another custom parameter already holds on a base.
func (m *Manager) Validate(r *fhir.Resource) error {
	d, err := search.ParseDefinition(r.Object)
	if err != nil {
		return err
	}
	if d.Active() {
		if p, _, _ := m.custom.ByURL(d.Param.URL); p == nil || p.Code != d.Param.Code || !slices.Equal(p.Base, d.Param.Base) {
			if m.custom.Conflict(d) {
				return &search.DefinitionError{Field: "code", Msg: "another custom SearchParameter defines this code on a base type"}
			}
		}
	}
	return nil
}

// Close stops the running jobs (they resume on the next Open) and waits
// for them.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

// newID returns a random job id.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Start begins a reindex job over types (every type when empty). urls,
// when given, must name registered custom parameters: only their entries
// are rebuilt, and they become searchable when the job completes. Without
// urls every entry of every scanned resource is rebuilt (built-in and
// custom), which also refreshes entries written by older versions of the
// extractor.
func (m *Manager) Start(ctx context.Context, types, urls []string) (*Job, error) {
	for _, t := range types {
		if !search.IsResourceType(t) {
			return nil, fmt.Errorf("%w: unknown resource type", store.ErrInvalid)
		}
	}
	var refs []ParamRef
	var bases []string
	for _, u := range urls {
		p, version, _ := m.custom.ByURL(u)
		if p == nil {
			return nil, fmt.Errorf("%w: no active custom SearchParameter has that url", store.ErrNotFound)
		}
		refs = append(refs, ParamRef{URL: u, Code: p.Code, Fingerprint: version})
		bases = append(bases, p.Base...)
	}
	if len(types) == 0 && len(refs) > 0 {
		types = bases
	}
	return m.start(ctx, types, refs)
}

func (m *Manager) start(ctx context.Context, types []string, refs []ParamRef) (*Job, error) {
	types = slices.Clone(types)
	sort.Strings(types)
	types = slices.Compact(types)
	total, err := m.rx.CountCurrent(ctx, types, 0)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	j := &Job{ID: newID(), Kind: KindReindex, Status: StatusRunning, Types: types, Params: refs, Total: total, Created: now, Updated: now}
	if err := m.save(ctx, j); err != nil {
		return nil, err
	}
	m.log.Info("reindex: job started", "job", j.ID, "types", len(types), "params", len(refs), "total", total)
	m.launch(j)
	return j, nil
}

func (m *Manager) save(ctx context.Context, j *Job) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := m.rx.PutJob(ctx, j.ID, doc); err != nil {
		return err
	}
	c := *j // j goes on changing in its runner
	m.noteJob(&c)
	return nil
}

// Job returns a job's current state, or store.ErrNotFound.
func (m *Manager) Job(ctx context.Context, id string) (*Job, error) {
	if id == "" || len(id) > 64 {
		return nil, fmt.Errorf("%w: reindex job", store.ErrNotFound)
	}
	doc, err := m.rx.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	var j Job
	if err := json.Unmarshal(doc, &j); err != nil {
		return nil, fmt.Errorf("reindex: corrupt job document: %w", err)
	}
	if !ownKind(j.Kind) {
		return nil, fmt.Errorf("%w: reindex job", store.ErrNotFound)
	}
	return &j, nil
}

// Jobs returns every job, oldest first.
func (m *Manager) Jobs(ctx context.Context) ([]*Job, error) {
	docs, err := m.rx.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Job, 0, len(docs))
	for _, doc := range docs {
		var j Job
		if err := json.Unmarshal(doc, &j); err != nil {
			return nil, fmt.Errorf("reindex: corrupt job document: %w", err)
		}
		if ownKind(j.Kind) {
			out = append(out, &j)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Created.Equal(out[b].Created) {
			return out[a].Created.Before(out[b].Created)
		}
		return out[a].ID < out[b].ID
	})
	return out, nil
}

// Wait blocks until the job is no longer running in this process (it
// completed, failed, or the Manager closed) or ctx ends.
func (m *Manager) Wait(ctx context.Context, id string) (*Job, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		m.mu.Lock()
		run := m.running[id]
		m.mu.Unlock()
		if !run {
			return m.Job(ctx, id)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (m *Manager) launch(j *Job) { m.launchJob(j, false) }

// takeOver runs a job another process left running, if its lease has
// ended, from the state stored when this process gets the lease.
func (m *Manager) takeOver(j *Job) { m.launchJob(j, true) }

func (m *Manager) launchJob(j *Job, reload bool) {
	m.mu.Lock()
	if m.running[j.ID] || m.ctx.Err() != nil {
		m.mu.Unlock()
		return
	}
	m.running[j.ID] = true
	if j.Kind == KindDrop && len(j.Params) == 1 {
		// Counted from now on, so a re-registration of the code waits
		// for the drop (runDrop uncounts it).
		m.drops[j.Params[0].Code]++
	}
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.running, j.ID)
			m.mu.Unlock()
		}()
		if j.Kind != KindDrop {
			// One process runs a job: another replica holding its lease
			// runs it, and Refresh takes it over if that one stops.
			if !m.lease(j.ID) {
				return
			}
			defer m.release(j.ID)
		}
		if reload {
			cur, err := m.Job(m.ctx, j.ID)
			if err != nil || cur.Status != StatusRunning {
				if cur != nil {
					m.noteJob(cur)
				}
				return
			}
			j = cur
		}
		m.run(j)
	}()
}

// leaseTTL is how long a job's lease lasts without renewal; the runner
// renews it after every batch.
const leaseTTL = 30 * time.Second

// lease takes or renews this Manager's lease of job id.
func (m *Manager) lease(id string) bool {
	now := time.Now()
	ok, err := m.rx.LeaseJob(m.ctx, id, m.owner, now, now.Add(leaseTTL))
	if err != nil && m.ctx.Err() == nil {
		m.log.Warn("reindex: cannot lease job", "job", id, "err", err)
	}
	return ok && err == nil
}

// release ends this Manager's lease of job id, so that another process
// may resume it at once (a closing Manager leaves its jobs running).
func (m *Manager) release(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now()
	_, _ = m.rx.LeaseJob(ctx, id, m.owner, now, now)
}

// maxBatchFailures is how many times in a row a batch may fail (a lost
// serialization race, a busy database) before the job is marked failed.
// With batchBackoff between attempts that is about 15 s of failures: a
// busy database delays a job, it does not fail it (eight attempts in
// about 2 s were seen to fail a job under heavy concurrent writes).
const maxBatchFailures = 20

// batchBackoff is the pause after the nth failure in a row: growing
// quadratically from 10 ms, at most 1 s.
func batchBackoff(n int) time.Duration {
	return min(time.Duration(n*n)*10*time.Millisecond, time.Second)
}

// run processes the job batch by batch until the end of the scan.
func (m *Manager) run(j *Job) {
	ctx := m.ctx
	if j.Kind == KindDrop {
		m.runDrop(j)
		return
	}
	codes := make([]string, len(j.Params))
	for i, p := range j.Params {
		codes[i] = p.Code
	}
	extract := m.extractor(j)
	failures := 0
	for {
		last, n, err := m.rx.ReindexBatch(ctx, &store.ReindexBatch{
			Types: j.Types, Params: codes, After: j.Cursor, Limit: m.opts.BatchSize, Extract: extract,
		})
		if ctx.Err() != nil {
			return // closing: the job stays running and resumes on the next Open
		}
		if err != nil {
			failures++
			if failures < maxBatchFailures {
				select {
				case <-ctx.Done():
					return // closing: the job stays running and resumes on the next Open
				case <-time.After(batchBackoff(failures)):
				}
				continue
			}
			j.Status, j.Error = StatusFailed, "a reindex batch failed repeatedly"
			j.Updated = time.Now().UTC()
			m.log.Error("reindex: job failed", "job", j.ID, "err", err)
			_ = m.save(context.Background(), j)
			return
		}
		failures = 0
		j.Cursor, j.Processed = last, j.Processed+int64(n)
		j.Updated = time.Now().UTC()
		done := n < m.opts.BatchSize
		if done {
			j.Status = StatusCompleted
		}
		if err := m.save(ctx, j); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log.Error("reindex: cannot save job state", "job", j.ID, "err", err)
		}
		if done {
			for _, p := range j.Params {
				m.custom.SetReady(p.URL, p.Fingerprint)
			}
			m.log.Info("reindex: job completed", "job", j.ID, "processed", j.Processed)
			return
		}
		if !m.lease(j.ID) {
			if ctx.Err() == nil {
				m.log.Warn("reindex: lost the lease of a job; another process resumes it", "job", j.ID)
			}
			return
		}
		if m.opts.Pause > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(m.opts.Pause):
			}
		}
	}
}

// extractor returns the batch extraction of a job: every entry of the
// record, built-in and custom. For a job on some parameters the store keeps
// only their codes; extracting everything keeps a code right even on a type
// where it names a built-in parameter rather than the custom one.
func (m *Manager) extractor(_ *Job) func(*store.Record) ([]search.Entry, error) {
	if x := m.extract.Load(); x != nil {
		return func(rec *store.Record) ([]search.Entry, error) { return (*x)(m.ctx, rec) }
	}
	return func(rec *store.Record) ([]search.Entry, error) {
		res, err := fhir.Parse(rec.Body, fhir.ParseOptions{MaxDepth: 1 << 10})
		if err != nil {
			// A stored body the parser refuses (written by an older, more
			// lenient version) keeps no entries rather than stopping the job.
			return nil, nil
		}
		return m.Extract(res), nil
	}
}

// SetExtractor replaces the jobs' extraction (batches started afterwards use it).
func (m *Manager) SetExtractor(x Extractor) { m.extract.Store(&x) }

// drop starts a job removing the entries of a retired parameter code from
// resources of types. Such a job is resumed after a restart like a reindex.
func (m *Manager) drop(ctx context.Context, types []string, code string) error {
	now := time.Now().UTC()
	j := &Job{ID: newID(), Kind: KindDrop, Status: StatusRunning, Types: types, Params: []ParamRef{{Code: code}}, Created: now, Updated: now}
	if err := m.save(ctx, j); err != nil {
		return err
	}
	m.launch(j)
	return nil
}

func (m *Manager) runDrop(j *Job) {
	if len(j.Params) != 1 {
		return
	}
	code := j.Params[0].Code
	defer func() {
		m.mu.Lock()
		if m.drops[code]--; m.drops[code] == 0 {
			delete(m.drops, code)
		}
		m.mu.Unlock()
	}()
	if err := m.rx.DropIndex(m.ctx, j.Types, code); err != nil {
		if m.ctx.Err() == nil {
			m.log.Error("reindex: cannot drop the entries of a removed parameter", "job", j.ID, "err", err)
			j.Status, j.Error = StatusFailed, "dropping the entries failed"
			j.Updated = time.Now().UTC()
			_ = m.save(context.Background(), j)
		}
		return
	}
	j.Status = StatusCompleted
	j.Updated = time.Now().UTC()
	_ = m.save(context.Background(), j)
}
