package audit

import (
	"encoding/base64"
	"errors"
	"strings"

	"phix/suite"
)

// pseudonymPrefix marks a pseudonym (version 1). Validate accepts in
// pseudonymous fields only strings of this exact shape.
const pseudonymPrefix = "ps1."

// pseudonymLen is the length of a pseudonym: prefix + base64url(32 bytes).
const pseudonymLen = len(pseudonymPrefix) + 43

// MinPseudonymKeySize is the smallest audit pseudonymisation key accepted.
const MinPseudonymKeySize = 32

// ErrPseudonymKey: the pseudonymisation key is too short.
var ErrPseudonymKey = errors.New("audit: pseudonymisation key shorter than 32 bytes")

// Pseudonymizer turns identifiers (resource ids, user subjects) into stable
// pseudonyms: a keyed MAC under the deployment's audit key, truncated to 256
// bits. The same input always gives the same pseudonym, so an auditor can
// search for everything that touched Patient/123 (the search API pseudonymises
// the query the same way), but the log itself never holds the id.
type Pseudonymizer struct {
	s   suite.Suite
	key []byte
}

// NewPseudonymizer returns a Pseudonymizer over suite s's MAC with key (at
// least 32 random bytes; keep it in the keyring, not next to the database).
func NewPseudonymizer(s suite.Suite, key []byte) (*Pseudonymizer, error) {
	if len(key) < MinPseudonymKeySize {
		return nil, ErrPseudonymKey
	}
	return &Pseudonymizer{s: s, key: append([]byte(nil), key...)}, nil
}

func (p *Pseudonymizer) mac(domain string, parts ...string) string {
	m := p.s.NewMAC(p.key)
	m.Write([]byte("phix-audit-pseudonym\x00"))
	m.Write([]byte(domain))
	for _, part := range parts {
		m.Write([]byte{0})
		m.Write([]byte(part))
	}
	sum := m.Sum(nil)
	return pseudonymPrefix + base64.RawURLEncoding.EncodeToString(sum[:32])
}

// Resource returns the pseudonym of resource type/id.
func (p *Pseudonymizer) Resource(resourceType, id string) string {
	return p.mac("resource", resourceType, id)
}

// Patient returns the pseudonym of Patient/id (the same as Resource("Patient", id)).
func (p *Pseudonymizer) Patient(id string) string { return p.Resource("Patient", id) }

// User returns the pseudonym of a user subject (the token's sub claim).
func (p *Pseudonymizer) User(subject string) string { return p.mac("user", subject) }

// Reference returns the pseudonym of a relative reference "Type/id". It
// reports false when ref is not of that shape.
func (p *Pseudonymizer) Reference(ref string) (string, bool) {
	typ, id, ok := strings.Cut(ref, "/")
	if !ok || !isTypeName(typ) || !isFHIRID(id) {
		return "", false
	}
	return p.Resource(typ, id), true
}

// QueryHash returns the hex suite hash of a canonical query string, for
// What.QueryHash: equal queries give equal hashes, and the values stay out of
// the log. The server passes its canonical (sorted) query.
func (p *Pseudonymizer) QueryHash(canonicalQuery string) string {
	// Keyed, so that low-entropy queries (a name) cannot be brute-forced.
	m := p.s.NewMAC(p.key)
	m.Write([]byte("phix-audit-query\x00"))
	m.Write([]byte(canonicalQuery))
	const hexdigits = "0123456789abcdef"
	sum := m.Sum(nil)[:32]
	out := make([]byte, 64)
	for i, b := range sum {
		out[2*i], out[2*i+1] = hexdigits[b>>4], hexdigits[b&15]
	}
	return string(out)
}

// IsPseudonym reports whether s has the shape of a pseudonym.
func IsPseudonym(s string) bool {
	if len(s) != pseudonymLen || !strings.HasPrefix(s, pseudonymPrefix) {
		return false
	}
	for i := len(pseudonymPrefix); i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
