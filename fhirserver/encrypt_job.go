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
			if o := j.m[id]; o != nil && o.state() != "running" {
				delete(j.m, id)
				j.order = append(j.order[:i], j.order[i+1:]...)
				break
			}
		}
	}
	j.m[job.id] = job
	j.order = append(j.order, job.id)
}

func (j *encryptJobs) get(id string) *encryptJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.m[id]
}

func (job *encryptJob) state() string {
	job.mu.Lock()
	defer job.mu.Unlock()
	return job.status
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
		if job = s.jobs.get(jid); job == nil {
			return errorf(CodeNotFound, "no such job")
		}
		job.mu.Lock()
		running := job.status == "running"
		if !running {
			job.status, job.reason, job.finished = "running", "", time.Time{}
		}
		job.mu.Unlock()
		if running {
			return errorf(CodeConflict, "the job is running")
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
		s.jobs.add(job)
	}
	// The job outlives the request.
	ctx := context.WithoutCancel(r.Context())
	go s.runEncrypt(ctx, job)
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
	job := s.jobs.get(jid)
	if job == nil {
		return errorf(CodeNotFound, "no such job")
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

func (job *encryptJob) finish(err error) {
	job.mu.Lock()
	defer job.mu.Unlock()
	job.finished = now()
	if err != nil {
		job.status = "failed"
		job.reason = asError(err).Issues[0].Diagnostics
		return
	}
	job.status = "completed"
}

// runEncrypt works through the job from its cursor.
func (s *Server) runEncrypt(ctx context.Context, job *encryptJob) {
	if job.resID != "" {
		err := s.reseal(ctx, job, job.types[0], job.resID)
		job.mu.Lock()
		job.total = 1
		job.mu.Unlock()
		job.finish(err)
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
			job.finish(nil)
			return
		}
		typ := job.types[ti]
		q, _, err := search.Parse(typ, url.Values{"_count": {strconv.Itoa(encryptPage)}, "_offset": {strconv.Itoa(off)}, "_total": {"accurate"}},
			search.ParseOptions{MaxCount: encryptPage})
		if err != nil {
			job.finish(errorf(CodeInternal, "internal error"))
			return
		}
		res, err := s.raw.Search(ctx, q)
		if err != nil {
			job.finish(storeError(err))
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
				job.finish(err)
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
