package gateway

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Outbound job statuses.
const (
	JobPreparing = "preparing" // collect .. sign, before the coordinator knows it
	JobUploading = "uploading"
	JobSent      = "sent"      // complete: waiting at the coordinator for the receiver
	JobDelivered = "delivered" // the receiver's receipt arrived
	JobFailed    = "failed"
	JobCancelled = "cancelled"
	JobWithdrawn = "withdrawn" // the consent was withdrawn during the send
	JobBlocked   = "blocked"   // refused by DLP or policy before anything left
)

// Job is one outbound transfer as the gateway persists it. It holds no PHI:
// file names of the source are not kept, only the sealed names.
type Job struct {
	Local      string    `json:"local"`
	ID         string    `json:"id,omitempty"` // the coordinator's transfer id
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	To         string    `json:"to"`
	Purpose    string    `json:"purpose"`
	ConsentID  string    `json:"consent_id"`
	PatientRef string    `json:"patient_ref,omitempty"` // pseudonymous (audit pseudonym)
	Deidentify string    `json:"deidentify,omitempty"`
	Status     string    `json:"status"`
	Stage      string    `json:"stage"`
	Code       string    `json:"code,omitempty"`
	Error      string    `json:"error,omitempty"`
	Findings   []Finding `json:"findings,omitempty"`
	Files      []JobFile `json:"files,omitempty"`
	Total      int64     `json:"total"`
	Sent       int64     `json:"sent"`
}

// JobFile is one sealed file of a job.
type JobFile struct {
	Name      string `json:"name"` // sealed name, e.g. f001.seal
	Size      int64  `json:"size"`
	Hash      string `json:"hash"`
	UploadURL string `json:"upload_url,omitempty"`
	Done      bool   `json:"done,omitempty"`
}

// Inbound record statuses.
const (
	InReceiving = "receiving"
	InDelivered = "delivered"
	InFailed    = "failed" // permanently refused (bad signature, no key): not retried
	InRetry     = "retry"  // failed for now (disk, FHIR server); the next pass retries
)

// Inbound is one received transfer. Status delivered is the persisted
// delivered-set: a transfer seen again is not imported again.
type Inbound struct {
	ID        string    `json:"id"`
	Sender    string    `json:"sender"`
	Purpose   string    `json:"purpose"`
	ConsentID string    `json:"consent_id"`
	Status    string    `json:"status"`
	Code      string    `json:"code,omitempty"`
	Error     string    `json:"error,omitempty"`
	Updated   time.Time `json:"updated"`
	// Resources are the references created in the local FHIR server.
	Resources []string `json:"resources,omitempty"`
	// Files are the delivered files, relative to the delivery folder.
	Files      []string `json:"files,omitempty"`
	Receipted  bool     `json:"receipted"`
	Attempts   int      `json:"attempts"`
	Refetches  int      `json:"refetches,omitempty"`
	Deidentify string   `json:"deidentify,omitempty"`
}

// stateStore keeps jobs and inbound records as JSON files written
// atomically (temp file, fsync, rename).
type stateStore struct {
	dir string
	mu  sync.Mutex
}

func openState(dir string) (*stateStore, error) {
	for _, d := range []string{"outbound", "inbound"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &stateStore{dir: dir}, nil
}

func (s *stateStore) jobDir(local string) string { return filepath.Join(s.dir, "outbound", local) }
func (s *stateStore) inDir(id string) string     { return filepath.Join(s.dir, "inbound", id) }

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(f.Name())
		return werr
	}
	return os.Rename(f.Name(), path)
}

func (s *stateStore) saveJob(j *Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.Updated = time.Now().UTC()
	return writeJSONAtomic(filepath.Join(s.jobDir(j.Local), "job.json"), j)
}

func (s *stateStore) job(local string) (*Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(s.jobDir(local), "job.json"))
	if err != nil {
		return nil, err
	}
	var j Job
	return &j, json.Unmarshal(b, &j)
}

func (s *stateStore) jobs() ([]*Job, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "outbound"))
	if err != nil {
		return nil, err
	}
	var out []*Job
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		j, err := s.job(e.Name())
		if err != nil {
			continue // a job directory without job.json: preparation crashed early
		}
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Created.After(out[b].Created) })
	return out, nil
}

func (s *stateStore) saveInbound(r *Inbound) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Updated = time.Now().UTC()
	return writeJSONAtomic(filepath.Join(s.inDir(r.ID), "record.json"), r)
}

func (s *stateStore) inbound(id string) (*Inbound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(s.inDir(id), "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Inbound
	return &r, json.Unmarshal(b, &r)
}

func (s *stateStore) inbounds() ([]*Inbound, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "inbound"))
	if err != nil {
		return nil, err
	}
	var out []*Inbound
	for _, e := range ents {
		if r, err := s.inbound(e.Name()); err == nil && r != nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Updated.After(out[b].Updated) })
	return out, nil
}
