package fhirserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"phix/access/roles"
	"phix/access/scopes"
	"phix/internal/bearer"
)

// Principal is who made a request.
type Principal struct {
	Subject string // a stable, non-PHI name for the caller (e.g. "static-token-1")
	// Role is what the caller may do; "" counts as RoleClinician (the
	// behaviour of authenticators written before roles).
	Role Role

	// The fields below are set by BearerAuth (OIDC/SMART tokens); the
	// static-token authenticator leaves them empty.

	Issuer   string       // the token's iss
	ClientID string       // the OAuth client the token was issued to
	Roles    []roles.Role // checked for separation of duties
	Org      string       // the caller's organisation
	Purpose  string       // purpose of use (v3 PurposeOfUse), e.g. TREAT
	FHIRUser string       // the user's FHIR resource, e.g. Practitioner/1
	Patient  string       // SMART launch context: the patient's logical id ("" none)
	Scopes   *scopes.Set  // the token's SMART scopes
	Expires  time.Time    // the token's exp
}

// Authenticator decides who a request comes from. The static-token
// implementation is the one phix has today; OIDC/SMART replaces it later
// behind this same interface.
type Authenticator interface {
	// Authenticate returns the caller, or an error when the request carries no
	// valid credentials. The error text is never shown to the client.
	Authenticate(r *http.Request) (*Principal, error)
}

// ErrUnauthenticated is returned by authenticators for a missing or invalid credential.
var ErrUnauthenticated = errors.New("fhirserver: unauthenticated")

// StaticTokens accepts a fixed set of bearer tokens.
type StaticTokens struct {
	digests [][32]byte
	names   []string
	roles   []Role
}

// NewStaticTokens returns an Authenticator accepting exactly these tokens.
// Empty tokens are refused.
func NewStaticTokens(tokens ...string) (*StaticTokens, error) {
	s := &StaticTokens{}
	for i, t := range tokens {
		if len(t) < 16 {
			return nil, errors.New("fhirserver: static token too short (need at least 16 characters)")
		}
		s.digests = append(s.digests, sha256.Sum256([]byte(t)))
		s.names = append(s.names, "static-token-"+itoa(i+1))
		s.roles = append(s.roles, RoleClinician)
	}
	if len(s.digests) == 0 {
		return nil, errors.New("fhirserver: no tokens")
	}
	return s, nil
}

// AddAuditorTokens adds tokens with RoleAuditor: they read the audit log and
// AuditEvent and nothing else. Their subjects are "auditor-token-N".
func (s *StaticTokens) AddAuditorTokens(tokens ...string) error {
	for i, t := range tokens {
		if len(t) < 16 {
			return errors.New("fhirserver: static token too short (need at least 16 characters)")
		}
		s.digests = append(s.digests, sha256.Sum256([]byte(t)))
		s.names = append(s.names, "auditor-token-"+itoa(i+1))
		s.roles = append(s.roles, RoleAuditor)
	}
	return nil
}

// Authenticate implements Authenticator. Tokens are compared through their
// SHA-256 digests in constant time, and every configured token is compared
// so timing does not reveal which one nearly matched.
func (s *StaticTokens) Authenticate(r *http.Request) (*Principal, error) {
	tok, ok := bearer.Token(r)
	if !ok {
		return nil, ErrUnauthenticated
	}
	d := sha256.Sum256([]byte(tok))
	match := -1
	for i := range s.digests {
		if subtle.ConstantTimeCompare(d[:], s.digests[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return nil, ErrUnauthenticated
	}
	return &Principal{Subject: s.names[match], Role: s.roles[match]}, nil
}

// NewToken returns a fresh random token: 32 bytes, base64url without padding.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
