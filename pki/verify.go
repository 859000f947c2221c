package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"time"
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// CA is the network CA certificate: the only trust anchor.
	CA *x509.Certificate
	// Pins says which SPKI hashes each principal may present. Required.
	Pins PinStore
	// CRL supplies the CA's current CRL. Required: revocation is not optional.
	CRL CRLSource
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Timeout bounds the PinStore and CRL look-ups of one handshake (5s if zero).
	Timeout time.Duration
}

// Verifier checks a peer certificate chain against the network rules. It is
// safe for concurrent use and caches the parsed CRL between handshakes.
type Verifier struct {
	ca      *x509.Certificate
	roots   *x509.CertPool
	pins    PinStore
	crl     CRLSource
	now     func() time.Time
	timeout time.Duration

	mu    sync.Mutex
	cache *crlState
}

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.CA == nil || !cfg.CA.IsCA {
		return nil, errorf(CodeBadRequest, "verifier needs the network CA certificate")
	}
	if cfg.Pins == nil {
		return nil, errorf(CodeBadRequest, "verifier needs a PinStore")
	}
	if cfg.CRL == nil {
		return nil, errorf(CodeBadRequest, "verifier needs a CRL source")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	roots := x509.NewCertPool()
	roots.AddCert(cfg.CA)
	return &Verifier{ca: cfg.CA, roots: roots, pins: cfg.Pins, crl: cfg.CRL, now: nowFunc(cfg.Now), timeout: cfg.Timeout}, nil
}

// Verify checks chain (leaf first, as a TLS peer sent it) for usage and
// returns the peer's principal. If want is non-nil it must accept the
// principal (return a PKI-WRONG-HOSPITAL error to refuse). The checks run
// in this order, each with its own code: profile and identity URI, chain
// to the network CA, validity period, expected identity, revocation (with
// a fresh, CA-signed CRL), pin.
func (v *Verifier) Verify(ctx context.Context, chain []*x509.Certificate, usage x509.ExtKeyUsage, want func(Principal) error) (Principal, error) {
	if len(chain) == 0 || chain[0] == nil {
		return Principal{}, errorf(CodeNoCert, "peer presented no certificate")
	}
	leaf := chain[0]
	p, err := principalOfURIs(leaf.URIs)
	if err != nil {
		return Principal{}, err
	}
	now := v.now()
	// Trust first, judged at a moment inside the leaf's validity, so an
	// expired certificate from a foreign CA reads as untrusted, not expired.
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	} else if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return p, errorf(CodeExpired, "certificate chain of %s is outside the CA's validity", p)
		}
		return p, errorf(CodeUntrusted, "certificate of %s does not chain to the network CA", p)
	}
	for _, c := range chains[0] {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return p, errorf(CodeExpired, "certificate %s of %s is outside its validity period", SerialString(c.SerialNumber), p)
		}
	}
	if want != nil {
		if err := want(p); err != nil {
			return p, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	st, err := v.currentCRL(ctx, now)
	if err != nil {
		return p, err
	}
	serial := SerialString(leaf.SerialNumber)
	if _, bad := st.revoked[serial]; bad {
		return p, errorf(CodeRevoked, "certificate %s of %s is revoked", serial, p)
	}
	allowed, err := v.pins.Pins(ctx, p)
	if err != nil {
		return p, wrap(CodeUnpinned, err, "pin look-up for %s failed", p)
	}
	pin := SPKIHash(leaf)
	if !pinned(pin, allowed) {
		return p, errorf(CodeUnpinned, "key %s is not pinned for %s", pin, p)
	}
	return p, nil
}

// currentCRL returns the verified CRL, fetching through the source and
// re-verifying only when its bytes change. A CRL past its next update
// fails closed.
func (v *Verifier) currentCRL(ctx context.Context, now time.Time) (*crlState, error) {
	raw, err := v.crl(ctx)
	if err != nil {
		return nil, wrap(CodeCRLInvalid, err, "CRL unavailable")
	}
	v.mu.Lock()
	st := v.cache
	v.mu.Unlock()
	if st == nil || !sameBytes(st.raw, raw) {
		st, err = loadCRL(raw, v.ca)
		if err != nil {
			return nil, err
		}
		v.mu.Lock()
		v.cache = st
		v.mu.Unlock()
	}
	if now.After(st.nextUpdate) {
		return nil, errorf(CodeCRLStale, "CRL expired at %s: refusing all peers until a fresh CRL arrives", st.nextUpdate.UTC().Format(time.RFC3339))
	}
	return st, nil
}

func sameBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) > 0 && &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ExpectPrincipal returns a want function for Verify that accepts only p.
func ExpectPrincipal(p Principal) func(Principal) error {
	return func(got Principal) error {
		if got != p {
			return errorf(CodeWrongHospital, "peer is %s, expected %s", got, p)
		}
		return nil
	}
}

// ExpectRole returns a want function for Verify that accepts any principal of the given roles.
func ExpectRole(roles ...Role) func(Principal) error {
	return func(got Principal) error {
		for _, r := range roles {
			if got.Role == r {
				return nil
			}
		}
		return errorf(CodeWrongHospital, "peer %s has a role not accepted here", got)
	}
}
