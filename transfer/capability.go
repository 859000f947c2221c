package transfer

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Capability failures: 403 when the token is not one the caller may use
// (unknown, tampered, wrong kind, another hospital or certificate), 410 when
// it was valid but is gone (used up or idle-expired).
func capInvalid() error {
	return errf(http.StatusForbidden, CodeCapInvalid, "Invalid capability", "the capability is not valid")
}

// checkCapability resolves the capability in r's path for the caller.
func (s *Server) checkCapability(ctx context.Context, r *http.Request, c caller, kind string) (Capability, error) {
	tok := r.PathValue("token")
	if len(tok) != 43 { // base64url of 32 bytes
		s.metrics.capRejected(CodeCapInvalid)
		return Capability{}, capInvalid()
	}
	cp, err := s.cfg.Store.Capability(ctx, tokenHash(tok))
	if errors.Is(err, ErrNotFound) || (err == nil && cp.Kind != kind) {
		s.metrics.capRejected(CodeCapInvalid)
		return cp, capInvalid()
	}
	if err != nil {
		return cp, s.internal(err)
	}
	var e *Error
	switch {
	case cp.Hospital != c.Hospital.ID || cp.CertFP != c.CertFP:
		e = errf(http.StatusForbidden, CodeCapForeign, "Foreign capability", "the capability belongs to another hospital or certificate")
	case cp.Dead && s.withdrawn(ctx, cp.Transfer):
		e = errf(http.StatusGone, CodeConsentWithdrawn, "Consent withdrawn", "the sender withdrew the consent this transfer relied on")
	case cp.Dead:
		e = errf(http.StatusGone, CodeCapUsed, "Capability used", "the capability has been used up")
	case !s.cfg.Now().Before(cp.Expires):
		e = errf(http.StatusGone, CodeCapExpired, "Capability expired", "the capability expired; request a new one")
	}
	if e != nil {
		s.metrics.capRejected(e.Code)
		return cp, e
	}
	return cp, nil
}

// issue stores a new capability and returns its token.
func (s *Server) newCapability(kind, transferID string, file int, c caller) (string, Capability) {
	tok, h := newToken()
	return tok, Capability{Hash: h, Kind: kind, Transfer: transferID, File: file, Hospital: c.Hospital.ID,
		CertFP: c.CertFP, Expires: s.cfg.Now().Add(s.cfg.CapabilityTTL)}
}

func (s *Server) touch(ctx context.Context, cp *Capability) {
	cp.Expires = s.cfg.Now().Add(s.cfg.CapabilityTTL)
	_ = s.cfg.Store.TouchCapability(ctx, cp.Hash, cp.Expires)
}

func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// withdrawn tells a holder of a dead capability why it died, when the reason
// is a consent withdrawal.
func (s *Server) withdrawn(ctx context.Context, id string) bool {
	t, _, err := s.cfg.Store.Transfer(ctx, id)
	return err == nil && t.Status == TransferWithdrawn
}
