package pki

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// IssuedRecord is one line of the issuance log: what was issued, to whom,
// when, and with which key (by pin). It holds no key material.
type IssuedRecord struct {
	Serial    string    `json:"serial"` // lowercase hex
	Kind      string    `json:"kind"`   // "issue", "renew" or "identity"
	Principal string    `json:"principal"`
	Pin       string    `json:"spki,omitempty"`
	KeyID     string    `json:"key_id,omitempty"` // identity bindings: suite key id
	DNSNames  []string  `json:"dns,omitempty"`
	IPs       []string  `json:"ip,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	IssuedAt  time.Time `json:"issued_at"`
	Renews    string    `json:"renews,omitempty"` // serial this renewal replaces
}

// RevokedRecord is one revocation.
type RevokedRecord struct {
	Serial    string    `json:"serial"`
	Reason    int       `json:"reason"` // RFC 5280 CRLReason
	RevokedAt time.Time `json:"revoked_at"`
}

// Store persists the issuance log and revocations. DirStore keeps them in
// JSON lines files; the coordinator may keep them in SQL instead.
// Implementations must be safe for concurrent use.
type Store interface {
	AppendIssued(ctx context.Context, r IssuedRecord) error
	// Issued looks a serial up; ok is false if it was never issued.
	Issued(ctx context.Context, serial string) (r IssuedRecord, ok bool, err error)
	AppendRevoked(ctx context.Context, r RevokedRecord) error
	Revoked(ctx context.Context) ([]RevokedRecord, error)
}

// DirStore is a Store in a directory: issued.jsonl and revoked.jsonl, each
// append a single write of one whole line followed by fsync. A torn last
// line (a crash mid-write) is ignored on read and never corrupts the others.
type DirStore struct {
	dir string
	mu  sync.Mutex
}

// Log file names inside a DirStore directory.
const (
	IssuedLogFile  = "issued.jsonl"
	RevokedLogFile = "revoked.jsonl"
)

// NewDirStore opens (creating if needed) a store in dir.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, wrap(CodeStore, err, "create store directory")
	}
	return &DirStore{dir: dir}, nil
}

func (s *DirStore) appendLine(name string, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return wrap(CodeStore, err, "encode log record")
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return wrap(CodeStore, err, "open %s", name)
	}
	// If a previous crash left a torn line, start on a fresh line so this
	// record stays whole.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if last, err := lastByte(path); err == nil && last != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return wrap(CodeStore, err, "append %s", name)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return wrap(CodeStore, err, "sync %s", name)
	}
	if err := f.Close(); err != nil {
		return wrap(CodeStore, err, "close %s", name)
	}
	return nil
}

func lastByte(path string) (byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, st.Size()-1); err != nil {
		return 0, err
	}
	return b[0], nil
}

// readLines calls fn for every complete line; a final line without '\n' is
// a torn append and skipped, as is any line that does not decode.
func (s *DirStore) readLines(name string, fn func([]byte)) error {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return wrap(CodeStore, err, "read %s", name)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			fn(sc.Bytes())
		}
	}
	return nil
}

// AppendIssued implements Store.
func (s *DirStore) AppendIssued(_ context.Context, r IssuedRecord) error {
	return s.appendLine(IssuedLogFile, r)
}

// Issued implements Store. It scans the log: issuance volume is small (one
// certificate per hospital per day).
func (s *DirStore) Issued(_ context.Context, serial string) (IssuedRecord, bool, error) {
	var out IssuedRecord
	found := false
	err := s.readLines(IssuedLogFile, func(line []byte) {
		var r IssuedRecord
		if json.Unmarshal(line, &r) == nil && r.Serial == serial {
			out, found = r, true
		}
	})
	return out, found, err
}

// AllIssued returns every issuance record in log order.
func (s *DirStore) AllIssued(_ context.Context) ([]IssuedRecord, error) {
	var out []IssuedRecord
	err := s.readLines(IssuedLogFile, func(line []byte) {
		var r IssuedRecord
		if json.Unmarshal(line, &r) == nil {
			out = append(out, r)
		}
	})
	return out, err
}

// AppendRevoked implements Store.
func (s *DirStore) AppendRevoked(_ context.Context, r RevokedRecord) error {
	return s.appendLine(RevokedLogFile, r)
}

// Revoked implements Store.
func (s *DirStore) Revoked(_ context.Context) ([]RevokedRecord, error) {
	var out []RevokedRecord
	err := s.readLines(RevokedLogFile, func(line []byte) {
		var r RevokedRecord
		if json.Unmarshal(line, &r) == nil {
			out = append(out, r)
		}
	})
	return out, err
}
