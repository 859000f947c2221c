package deid

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"sync"
	"time"

	"phix/suite"
)

// ReidTable maps pseudonyms to their originals, each original sealed at
// once (AES-GCM or SM4-GCM) under a key only the entitled receiver holds,
// bound to its pseudonym. It is produced alongside the output and is
// useless without that key.
type ReidTable struct {
	mu      sync.Mutex
	suite   suite.ID
	aead    cipher.AEAD
	entries map[string][]byte
}

// NewReidTable makes a table sealed under receiverKey (the suite's AEAD key
// size).
func NewReidTable(id suite.ID, receiverKey []byte) (*ReidTable, error) {
	s, err := suite.Lookup(id)
	if err != nil {
		return nil, failed("reid", "unknown suite")
	}
	a, err := s.NewAEAD(receiverKey)
	if err != nil {
		return nil, failed("reid", "receiver key has the wrong size")
	}
	return &ReidTable{suite: id, aead: a, entries: map[string][]byte{}}, nil
}

func reidAAD(pseudonym string) []byte { return []byte("phix deid reid v1\x00" + pseudonym) }

func (t *ReidTable) add(pseudonym, original string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.entries[pseudonym]; ok {
		return
	}
	nonce := make([]byte, t.aead.NonceSize(), t.aead.NonceSize()+len(original)+t.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return
	}
	t.entries[pseudonym] = t.aead.Seal(nonce, nonce, []byte(original), reidAAD(pseudonym))
}

// Len is the number of entries.
func (t *ReidTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

type reidFile struct {
	Format  string            `json:"format"`
	Suite   suite.ID          `json:"suite"`
	Entries map[string][]byte `json:"entries"`
}

// MarshalJSON writes the sealed table.
func (t *ReidTable) MarshalJSON() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return json.Marshal(reidFile{Format: "phix-reid-v1", Suite: t.suite, Entries: t.entries})
}

// Auditor records every re-identification. An error from it refuses the
// re-identification.
type Auditor interface {
	Reidentified(ctx context.Context, ev ReidEvent) error
}

// ReidEvent is what the auditor is told: who, why and which pseudonym;
// never the original value.
type ReidEvent struct {
	Actor     string
	Purpose   string
	Pseudonym string
	Found     bool
	Time      time.Time
}

// Reidentifier opens a sealed table for an entitled receiver.
type Reidentifier struct {
	aead    cipher.AEAD
	entries map[string][]byte
	auditor Auditor
}

// OpenReidTable reads a table written by MarshalJSON with the receiver's
// key. The auditor is required.
func OpenReidTable(data []byte, receiverKey []byte, auditor Auditor) (*Reidentifier, error) {
	if auditor == nil {
		return nil, &Error{Code: CodeReidDenied, Rule: -1, Msg: "an auditor is required"}
	}
	var f reidFile
	if err := json.Unmarshal(data, &f); err != nil || f.Format != "phix-reid-v1" {
		return nil, &Error{Code: CodeReidDenied, Rule: -1, Msg: "not a phix re-identification table"}
	}
	s, err := suite.Lookup(f.Suite)
	if err != nil {
		return nil, &Error{Code: CodeReidDenied, Rule: -1, Msg: "unknown suite"}
	}
	a, err := s.NewAEAD(receiverKey)
	if err != nil {
		return nil, &Error{Code: CodeReidDenied, Rule: -1, Msg: "receiver key has the wrong size"}
	}
	return &Reidentifier{aead: a, entries: f.Entries, auditor: auditor}, nil
}

// Reidentify returns the original behind a pseudonym. It audits first; the
// key must open the entry.
func (r *Reidentifier) Reidentify(ctx context.Context, actor, purpose, pseudonym string) (string, error) {
	if actor == "" || purpose == "" {
		return "", &Error{Code: CodeReidDenied, Rule: -1, Msg: "actor and purpose are required"}
	}
	sealed, found := r.entries[pseudonym]
	if err := r.auditor.Reidentified(ctx, ReidEvent{Actor: actor, Purpose: purpose, Pseudonym: pseudonym, Found: found, Time: time.Now().UTC()}); err != nil {
		return "", &Error{Code: CodeReidDenied, Rule: -1, Msg: "audit failed", err: err}
	}
	if !found {
		return "", &Error{Code: CodeReidDenied, Rule: -1, Msg: "unknown pseudonym"}
	}
	n := r.aead.NonceSize()
	if len(sealed) < n {
		return "", &Error{Code: CodeReidDenied, Rule: -1, Msg: "damaged entry"}
	}
	pt, err := r.aead.Open(nil, sealed[:n], sealed[n:], reidAAD(pseudonym))
	if err != nil {
		return "", &Error{Code: CodeReidDenied, Rule: -1, Msg: "key does not open the table"}
	}
	return string(pt), nil
}
