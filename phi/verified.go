package phi

import (
	"context"

	"phix/errcode"
	"phix/fhir"
)

// OpenVerified decrypts, in place, a stored resource whose HMAC the caller
// has already verified with Verify (which returned patientID) for these
// exact bytes, e.g. remembered under a collision-resistant hash of the
// stored body. It skips the canonical form and the HMAC; everything else is
// as in OpenJSON (ErrKeyDestroyed after an erasure, PHI-6005 when a sealed
// value does not open). r is modified and returned.
func (p *Protector) OpenVerified(ctx context.Context, r *fhir.Resource, patientID string) (*fhir.Resource, error) {
	if r == nil || r.Object == nil {
		return nil, errcode.New(errcode.HMACVerificationFailed, "no resource")
	}
	key, err := p.fieldKey(ctx, patientID, false)
	if err != nil {
		return nil, err
	}
	a, err := p.cfg.Suite.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	return p.openInPlace(r.Type, r.ID, r.Object, a)
}
