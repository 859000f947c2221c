package fhirserver

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"phix/errcode"
	"phix/fhir"
)

// Seed 002 ("HMAC Caching: cache computed HMACs for read-heavy
// workloads"): the server remembers which stored bodies passed their HMAC
// check, keyed by the SHA-256 of the exact stored bytes, so a re-read of an
// unchanged version skips the canonical form and the HMAC. Any change to
// the stored bytes (tampering included) changes the key and the version is
// verified again. The cache holds hashes and key owner ids only, no PHI.
// Entries expire (verifiedTTL) so a destroyed HMAC KEK version stops
// verifying within that time, as phi's key cache does.

// verifiedOpener is the optional Protector method the cache needs
// (*phi.Protector has it).
type verifiedOpener interface {
	OpenVerified(ctx context.Context, r *fhir.Resource, patientID string) (*fhir.Resource, error)
}

const (
	verifiedMax = 200000 // entries (≈ 20 MiB); the map is emptied when full
	verifiedTTL = 5 * time.Minute
)

type verifiedCache struct {
	mu sync.Mutex
	m  map[[32]byte]verifiedEntry
}

type verifiedEntry struct {
	owner string
	until time.Time
}

func newVerifiedCache() *verifiedCache { return &verifiedCache{m: map[[32]byte]verifiedEntry{}} }

func (c *verifiedCache) get(h [32]byte, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[h]
	if !ok || !now.Before(e.until) {
		return "", false
	}
	return e.owner, true
}

func (c *verifiedCache) put(h [32]byte, owner string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= verifiedMax {
		clear(c.m)
	}
	c.m[h] = verifiedEntry{owner: owner, until: now.Add(verifiedTTL)}
}

// openStored verifies (or finds verified) and decrypts a stored body.
func (s *Server) openStored(ctx context.Context, body []byte) (*fhir.Resource, error) {
	vo, ok := s.protect.(verifiedOpener)
	if !ok {
		return s.protect.OpenJSON(ctx, body)
	}
	r, err := fhir.Parse(body, fhir.ParseOptions{})
	if err != nil {
		return nil, errcode.Wrap(errcode.HMACVerificationFailed, err, "stored resource does not parse")
	}
	h := sha256.Sum256(body)
	t := time.Now()
	owner, hit := s.verified.get(h, t)
	if !hit {
		if owner, err = s.protect.Verify(ctx, r); err != nil {
			return nil, err
		}
		s.verified.put(h, owner, t)
	}
	return vo.OpenVerified(ctx, r, owner)
}
