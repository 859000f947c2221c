package fhirserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"phix/errcode"
	"phix/fhir/search"
	"phix/phi"
	"phix/store"
)

// $encrypt re-seals resources under the current key versions (HMAC KEK,
// blind-index KEK; the data keys themselves are re-wrapped by kms rotation)
// as a background job: each resource gets a new version with the same
// content, sealed afresh. Reads and writes go on meanwhile; a resource a
// client changes during the job is skipped (its new version is sealed under
// the current keys already).

// jobDocs is the store's table of background jobs (store.Reindexer's job
// documents and leases): $encrypt jobs persist there, survive a restart
// (resumed at start), and one replica runs a job at a time.
type jobDocs interface {
	PutJob(ctx context.Context, id string, doc []byte) error
	Job(ctx context.Context, id string) ([]byte, error)
	Jobs(ctx context.Context) (map[string][]byte, error)
	LeaseJob(ctx context.Context, id, owner string, now, until time.Time) (bool, error)
}

// jobNotFound is the diagnostic of a status poll (or resume) naming no
// job: never started, or finished longer ago than the job retention and
// purged (docs/reindex.md, "Job retention and incremental refresh"). Code CodeNotFound, 404.
const jobNotFound = "no such job: unknown, or finished longer ago than the job retention and purged"

// encryptKind is the kind of an $encrypt job document.
const encryptKind = "encrypt"

// encryptLease is how long a job's lease lasts; the runner renews it
// after every page.
const encryptLease = 30 * time.Second

// encryptDoc is the persisted form of an encryptJob.
type encryptDoc struct {
	Kind         string    `json:"kind"`
	ID           string    `json:"id"`
	Types        []string  `json:"types"`
	ResID        string    `json:"resId,omitempty"`
	Status       string    `json:"status"`
	Total        int       `json:"total"`
	Done         int       `json:"done"`
	Skipped      int       `json:"skipped"`
	Failed       int       `json:"failed"`
	TypeIdx      int       `json:"typeIdx"`
	Offset       int       `json:"offset"`
	CountedTotal bool      `json:"countedTotal,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished,omitzero"`
}

func (job *encryptJob) doc() encryptDoc {
	job.mu.Lock()
	defer job.mu.Unlock()
	return encryptDoc{Kind: encryptKind, ID: job.id, Types: job.types, ResID: job.resID, Status: job.status,
		Total: job.total, Done: job.done, Skipped: job.skipped, Failed: job.failed, TypeIdx: job.typeIdx,
		Offset: job.offset, CountedTotal: job.countedTotal, Reason: job.reason, Started: job.started, Finished: job.finished}
}

func jobFromDoc(d encryptDoc) *encryptJob {
	return &encryptJob{id: d.ID, types: d.Types, resID: d.ResID, status: d.Status, total: d.Total, done: d.Done,
		skipped: d.Skipped, failed: d.Failed, typeIdx: d.TypeIdx, offset: d.Offset, countedTotal: d.CountedTotal,
		reason: d.Reason, started: d.Started, finished: d.Finished, forgotten: map[string]bool{}}
}

// saveJob persists the job's state (a no-op without a job table).
func (s *Server) saveJob(ctx context.Context, job *encryptJob) error {
	return s.saveDoc(ctx, job.doc())
}

func (s *Server) saveDoc(ctx context.Context, d encryptDoc) error {
	if s.jobDocs == nil {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return s.jobDocs.PutJob(context.WithoutCancel(ctx), d.ID, b)
}

// readJob reads a persisted $encrypt job: store.ErrNotFound when the table
// has no $encrypt job of that id, another error when it cannot be read.
func (s *Server) readJob(ctx context.Context, id string) (*encryptJob, error) {
	if s.jobDocs == nil || len(id) > 64 {
		return nil, store.ErrNotFound
	}
	b, err := s.jobDocs.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	var d encryptDoc
	if json.Unmarshal(b, &d) != nil || d.Kind != encryptKind || d.ID != id {
		return nil, store.ErrNotFound
	}
	return jobFromDoc(d), nil
}

// lookupJob finds a job: the one this process runs, else the stored one
// (loaded, started before a restart or by another replica, or finished
// here: the store has its end first). A finished job this process still
// remembers but the store no longer has was purged: it is forgotten and
// not found, as on every other replica. With a job table, job is the
// remembered job or nil; loaded, when not nil, is the stored state.
func (s *Server) lookupJob(ctx context.Context, id string) (job, loaded *encryptJob) {
	job = s.jobs.get(id)
	if s.jobDocs == nil || (job != nil && job.running()) {
		return job, nil
	}
	loaded, err := s.readJob(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if job != nil {
			s.jobs.forget(id)
		}
		return nil, nil
	case err != nil:
		return job, nil // the store is unreachable: what this process knows
	}
	if job == nil {
		job = loaded
	}
	return job, loaded
}

// leaseJob takes or renews this process's lease of a job (always true
// without a job table).
func (s *Server) leaseJob(ctx context.Context, id string) bool {
	if s.jobDocs == nil {
		return true
	}
	now := time.Now()
	ok, err := s.jobDocs.LeaseJob(context.WithoutCancel(ctx), id, s.instance, now, now.Add(encryptLease))
	return ok && err == nil
}

func (s *Server) releaseJob(ctx context.Context, id string) {
	if s.jobDocs == nil {
		return
	}
	now := time.Now()
	_, _ = s.jobDocs.LeaseJob(context.WithoutCancel(ctx), id, s.instance, now, now)
}

// resumeEncryptJobsLater resumes, in the background, the $encrypt jobs a
// stopped process left running (once their lease has ended).
func (s *Server) resumeEncryptJobsLater() {
	go func() {
		ctx := context.Background()
		docs, err := s.jobDocs.Jobs(ctx)
		if err != nil {
			s.log.Warn("$encrypt: cannot list unfinished jobs", "err", err)
			return
		}
		for id, b := range docs {
			var d encryptDoc
			if json.Unmarshal(b, &d) != nil || d.Kind != encryptKind || d.ID != id || d.Status != "running" {
				continue
			}
			// Refused when another replica holds it: it runs there.
			_ = s.startEncrypt(ctx, s.jobs.adopt(jobFromDoc(d)))
		}
	}()
}

// startEncrypt runs job on a goroutine of its own, from its cursor, unless
// it runs already: in this process, or in another holding its lease.
func (s *Server) startEncrypt(ctx context.Context, job *encryptJob) error {
	job.mu.Lock()
	defer job.mu.Unlock()
	if job.active || !s.leaseJob(ctx, job.id) {
		return errorf(CodeConflict, "the job is running")
	}
	job.active = true
	job.status, job.reason, job.finished = "running", "", time.Time{}
	go s.runEncrypt(ctx, job)
	return nil
}

// maxEncryptJobs bounds the jobs kept in memory (finished ones are dropped
// oldest first).
const maxEncryptJobs = 256

// encryptPage is how many resources a job reads per page.
const encryptPage = 200

// encryptJob is one $encrypt run. Its cursor (type index and offset in the
// type's id order) lets a failed or interrupted job resume where it stopped.
type encryptJob struct {
	id    string
	types []string
	resID string // one resource, or "" for whole types

	mu                   sync.Mutex
	active               bool   // a goroutine of this process runs it
	status               string // running, completed, failed
	total, done, skipped int
	failed               int
	typeIdx, offset      int
	reason               string
	started, finished    time.Time
	forgotten            map[string]bool
	countedTotal         bool
}

type encryptJobs struct {
	mu    sync.Mutex
	m     map[string]*encryptJob
	order []string
}

func newEncryptJobs() *encryptJobs { return &encryptJobs{m: map[string]*encryptJob{}} }

func (j *encryptJobs) add(job *encryptJob) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.order) >= maxEncryptJobs {
		for i, id := range j.order {
			if o := j.m[id]; o != nil && !o.running() {
				delete(j.m, id)
				j.order = append(j.order[:i], j.order[i+1:]...)
				break
			}
		}
	}
	j.m[job.id] = job
	j.order = append(j.order, job.id)
}

// adopt adds job unless one of its id is there already, and returns the
// one kept.
func (j *encryptJobs) adopt(job *encryptJob) *encryptJob {
	if cur := j.get(job.id); cur != nil {
		return cur
	}
	j.add(job)
	return job
}

// forget drops a job this process no longer runs (purged from the store).
func (j *encryptJobs) forget(id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if o := j.m[id]; o == nil || o.running() {
		return
	}
	delete(j.m, id)
	for i, oid := range j.order {
		if oid == id {
			j.order = append(j.order[:i], j.order[i+1:]...)
			break
		}
	}
}

func (j *encryptJobs) get(id string) *encryptJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.m[id]
}

// running reports whether a goroutine of this process runs the job.
func (job *encryptJob) running() bool {
	job.mu.Lock()
	defer job.mu.Unlock()
	return job.active
}

// handleEncrypt starts (or, with ?job=ID, resumes) a re-encryption job:
// POST [type]/[id]/$encrypt, POST [type]/$encrypt, or POST $encrypt?_type=A,B.
// It answers 202 with Content-Location naming the job's status URL.
func (s *Server) handleEncrypt(w http.ResponseWriter, r *http.Request) error {
	if s.protect == nil {
		return errorf(CodeNotSupported, "$encrypt needs PHI protection")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errorf(CodeInvalidRequest, "malformed query string")
	}
	var job *encryptJob
	if jid := q.Get("job"); jid != "" {
		var loaded *encryptJob
		if job, loaded = s.lookupJob(r.Context(), jid); job == nil {
			return errorf(CodeNotFound, jobNotFound)
		}
		if loaded != nil {
			job = s.jobs.adopt(loaded)
		}
	} else {
		typ, id := r.PathValue("type"), r.PathValue("id")
		var types []string
		switch {
		case typ != "":
			if err := checkType(typ); err != nil {
				return err
			}
			if id != "" {
				if err := checkID(id); err != nil {
					return err
				}
			}
			types = []string{typ}
		default:
			for _, t := range strings.Split(q.Get("_type"), ",") {
				if t = strings.TrimSpace(t); t == "" {
					continue
				}
				if err := checkType(t); err != nil {
					return err
				}
				types = append(types, t)
			}
			if len(types) == 0 {
				return errorf(CodeInvalidRequest, "$encrypt at the system level needs _type")
			}
		}
		if id != "" {
			if _, err := s.raw.Read(r.Context(), typ, id); err != nil {
				return storeError(err)
			}
		}
		job = &encryptJob{id: newID(), types: types, resID: id, status: "running", started: now(), forgotten: map[string]bool{}}
		if err := s.saveJob(r.Context(), job); err != nil {
			return storeError(err)
		}
		s.jobs.add(job)
	}
	// The job outlives the request.
	if err := s.startEncrypt(context.WithoutCancel(r.Context()), job); err != nil {
		return err
	}
	w.Header().Set("Content-Location", s.baseURL(r)+"/$encrypt?job="+job.id)
	body, _ := json.Marshal(job.parameters())
	writeJSON(w, http.StatusAccepted, body)
	return nil
}

// handleEncryptStatus is GET $encrypt?job=ID: the job's progress.
func (s *Server) handleEncryptStatus(w http.ResponseWriter, r *http.Request) error {
	jid := r.URL.Query().Get("job")
	if jid == "" {
		return errorf(CodeInvalidRequest, "job is required")
	}
	job, loaded := s.lookupJob(r.Context(), jid)
	if job == nil {
		return errorf(CodeNotFound, jobNotFound)
	}
	if loaded != nil {
		job = loaded
	}
	body, _ := json.Marshal(job.parameters())
	writeJSON(w, http.StatusOK, body)
	return nil
}

// parameters renders the job's progress as a Parameters resource.
func (job *encryptJob) parameters() map[string]any {
	job.mu.Lock()
	defer job.mu.Unlock()
	p := []any{
		map[string]any{"name": "job", "valueString": job.id},
		map[string]any{"name": "status", "valueCode": job.status},
		map[string]any{"name": "type", "valueString": strings.Join(job.types, ",")},
		map[string]any{"name": "total", "valueInteger": job.total},
		map[string]any{"name": "done", "valueInteger": job.done},
		map[string]any{"name": "skipped", "valueInteger": job.skipped},
		map[string]any{"name": "failed", "valueInteger": job.failed},
		map[string]any{"name": "started", "valueInstant": instant(job.started)},
	}
	if !job.finished.IsZero() {
		p = append(p, map[string]any{"name": "finished", "valueInstant": instant(job.finished)})
	}
	if job.reason != "" {
		p = append(p, map[string]any{"name": "reason", "valueString": job.reason})
	}
	return map[string]any{"resourceType": "Parameters", "parameter": p}
}

// outcome is the status and reason a job ends with after err.
func outcome(err error) (status, reason string) {
	if err != nil {
		return "failed", asError(err).Issues[0].Diagnostics
	}
	return "completed", ""
}

// runEncrypt works through the job from its cursor, under this process's
// lease of it (taken by the caller), saving the cursor after every page.
func (s *Server) runEncrypt(ctx context.Context, job *encryptJob) {
	defer func() {
		s.releaseJob(ctx, job.id)
		job.mu.Lock()
		job.active = false
		job.mu.Unlock()
	}()
	// The end is stored before this process shows it, so that any server
	// answering for the job says it ended once this one does.
	finish := func(err error) {
		d := job.doc()
		d.Status, d.Reason = outcome(err)
		d.Finished = now()
		if serr := s.saveDoc(ctx, d); serr != nil {
			s.log.Warn("$encrypt: cannot save the job's state", "err", serr)
		}
		job.mu.Lock()
		job.status, job.reason, job.finished = d.Status, d.Reason, d.Finished
		job.mu.Unlock()
	}
	if job.resID != "" {
		err := s.reseal(ctx, job, job.types[0], job.resID)
		job.mu.Lock()
		job.total = 1
		job.mu.Unlock()
		finish(err)
		return
	}
	if f, ok := s.protect.(interface{ ForgetIndexKeys() }); ok {
		f.ForgetIndexKeys() // blind tokens under the current blind-index KEK version
	}
	for {
		job.mu.Lock()
		ti, off := job.typeIdx, job.offset
		job.mu.Unlock()
		if ti >= len(job.types) {
			finish(nil)
			return
		}
		typ := job.types[ti]
		q, _, err := search.Parse(typ, url.Values{"_count": {strconv.Itoa(encryptPage)}, "_offset": {strconv.Itoa(off)}, "_total": {"accurate"}},
			search.ParseOptions{MaxCount: encryptPage})
		if err != nil {
			finish(errorf(CodeInternal, "internal error"))
			return
		}
		res, err := s.raw.Search(ctx, q)
		if err != nil {
			finish(storeError(err))
			return
		}
		job.mu.Lock()
		if off == 0 && !job.countedTotal && res.Total > 0 {
			job.total += res.Total
		}
		job.countedTotal = true
		job.mu.Unlock()
		for _, rec := range res.Matches {
			if err := s.reseal(ctx, job, rec.Type, rec.ID); err != nil {
				finish(err)
				return
			}
			job.mu.Lock()
			job.offset++
			job.mu.Unlock()
		}
		if len(res.Matches) < encryptPage {
			job.mu.Lock()
			job.typeIdx, job.offset, job.countedTotal = job.typeIdx+1, 0, false
			job.mu.Unlock()
		}
		// The cursor survives a restart; the lease keeps other replicas off.
		if err := s.saveJob(ctx, job); err != nil {
			s.log.Warn("$encrypt: cannot save the job's state", "err", err)
		}
		if !s.leaseJob(ctx, job.id) {
			s.log.Warn("$encrypt: lost the job's lease; another server process resumes it")
			return
		}
	}
}

// reseal writes typ/id's current content again, sealed under the current
// key versions. Erased, deleted or concurrently changed resources are
// skipped; one that fails its integrity check is counted as failed (and
// logged) but does not stop the job. A store or key service error does.
func (s *Server) reseal(ctx context.Context, job *encryptJob, typ, id string) error {
	outcome := "done"
	err := s.runTx(ctx, func(tx store.Tx) error {
		outcome = "done"
		raw := tx
		if pt, ok := tx.(*protectedTx); ok {
			raw = pt.Tx
		}
		cur, err := raw.Read(ctx, typ, id)
		if errors.Is(err, store.ErrDeleted) || errors.Is(err, store.ErrNotFound) {
			outcome = "skipped"
			return nil
		}
		if err != nil {
			return err
		}
		plain, err := s.protect.OpenJSON(ctx, cur.Body)
		switch {
		case errors.Is(err, phi.ErrKeyDestroyed):
			outcome = "skipped"
			return nil
		case errcode.CodeOf(err) == errcode.HMACVerificationFailed:
			outcome = "failed"
			s.log.Warn("$encrypt: integrity check failed", "error_code", string(errcode.HMACVerificationFailed), "resource_type", typ, "version", cur.Version)
			return nil
		case err != nil:
			return s.protectErr(err)
		}
		owner := keyOwner(plain)
		job.mu.Lock()
		forget := !job.forgotten[owner]
		job.forgotten[owner] = true
		job.mu.Unlock()
		if forget {
			s.protect.Forget(owner) // pick up the current HMAC KEK version
		}
		_, err = s.put(ctx, tx, plain, id, cur.Version+1, cur.Version, http.MethodPut, false)
		if errors.Is(err, store.ErrVersionConflict) || (err != nil && asError(err).Code() == CodeVersionConflict) {
			outcome = "skipped"
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	job.mu.Lock()
	switch outcome {
	case "done":
		job.done++
	case "skipped":
		job.skipped++
	case "failed":
		job.failed++
	}
	job.mu.Unlock()
	return nil
}
