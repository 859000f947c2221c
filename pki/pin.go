package pki

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"sync"
)

const pinPrefix = "sha256/"

// SPKIHash returns the pin of cert: "sha256/" + base64(SHA-256(SubjectPublicKeyInfo)),
// the RFC 7469 form. Renewing for the same key keeps it; a new key changes it.
func SPKIHash(cert *x509.Certificate) string {
	return spkiHashRaw(cert.RawSubjectPublicKeyInfo)
}

func spkiHashRaw(spki []byte) string {
	sum := sha256.Sum256(spki)
	return pinPrefix + base64.StdEncoding.EncodeToString(sum[:])
}

// PublicKeyPin returns the pin of a public key (what SPKIHash gives for any
// certificate carrying it).
func PublicKeyPin(pub any) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", wrap(CodeBadRequest, err, "unsupported public key")
	}
	return spkiHashRaw(der), nil
}

// ParsePin checks a pin string and returns its canonical form and digest.
// Surrounding spaces are ignored; the algorithm label is case-insensitive.
func ParsePin(s string) (string, [32]byte, error) {
	var sum [32]byte
	s = strings.TrimSpace(s)
	if len(s) < len(pinPrefix) || !strings.EqualFold(s[:len(pinPrefix)], pinPrefix) {
		return "", sum, errorf(CodeBadPin, "pin must start with %q", pinPrefix)
	}
	b64 := s[len(pinPrefix):]
	if len(b64) != 44 {
		return "", sum, errorf(CodeBadPin, "pin must hold a base64 SHA-256 digest (44 characters)")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(raw) != 32 {
		return "", sum, errorf(CodeBadPin, "pin is not valid base64 of 32 bytes")
	}
	copy(sum[:], raw)
	return pinPrefix + b64, sum, nil
}

// PinStore answers which SPKI pins a principal may present. More than one
// pin is how keys roll over: the registry adds the new pin, the hospital
// switches keys, the registry drops the old pin. The coordinator's hospital
// registry implements it; MemoryPins serves tests and the dev network.
type PinStore interface {
	// Pins returns the canonical pins allowed for p (none if p is unknown).
	Pins(ctx context.Context, p Principal) ([]string, error)
}

// MemoryPins is an in-memory PinStore, safe for concurrent use.
type MemoryPins struct {
	mu   sync.RWMutex
	pins map[Principal]map[string]struct{}
}

// NewMemoryPins returns an empty store.
func NewMemoryPins() *MemoryPins {
	return &MemoryPins{pins: map[Principal]map[string]struct{}{}}
}

// Add allows pin for p.
func (m *MemoryPins) Add(p Principal, pin string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	c, _, err := ParsePin(pin)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.pins[p]
	if set == nil {
		set = map[string]struct{}{}
		m.pins[p] = set
	}
	set[c] = struct{}{}
	return nil
}

// Remove withdraws pin for p.
func (m *MemoryPins) Remove(p Principal, pin string) {
	c, _, err := ParsePin(pin)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pins[p], c)
}

// Pins implements PinStore.
func (m *MemoryPins) Pins(_ context.Context, p Principal) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.pins[p]))
	for pin := range m.pins[p] {
		out = append(out, pin)
	}
	return out, nil
}

// pinned reports whether pin is among allowed, comparing canonical forms.
func pinned(pin string, allowed []string) bool {
	for _, a := range allowed {
		c, _, err := ParsePin(a)
		if err == nil && c == pin {
			return true
		}
	}
	return false
}
