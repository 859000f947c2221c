package keyring

import (
	"context"
	"encoding/json"
	"errors"

	"phix/kms"
	"phix/suite"
)

// Rekey moves the keyring in st from master old to master next: a new salt
// and check value, and every live KEK version re-sealed, in one transaction.
// KEK material does not change, so nothing wrapped under the KEKs changes.
// Run it with no other process using the keyring (other processes must be
// restarted with the new master key; a version created meanwhile makes the
// transaction fail with kms.ErrConflict and nothing changes).
func Rekey(ctx context.Context, st kms.Store, old, next Master, opt Options) (int, error) {
	if next.key == nil && next.passphrase == nil {
		return 0, kms.Errorf(kms.CodeBadInput, "no new master key")
	}
	ob, err := Open(ctx, st, old, opt)
	if err != nil {
		return 0, err
	}
	raw, err := st.Meta(ctx, metaParams)
	if err != nil {
		return 0, err
	}
	var cur params
	if err := json.Unmarshal(raw, &cur); err != nil {
		return 0, kms.Errorf(kms.CodeBackend, "keyring parameters are corrupt")
	}
	if opt.Suite == "" {
		opt.Suite = cur.Suite
	}
	np, err := newParams(next, opt)
	if err != nil {
		return 0, err
	}
	nb := &Backend{root: rootKey(next, np), salt: np.Salt}
	keks, err := st.KEKs(ctx)
	if err != nil {
		return 0, err
	}
	var changes []kms.HandleChange
	for _, k := range keks {
		s, err := suite.Lookup(suite.ID(k.Suite))
		if err != nil {
			return 0, kms.Errorf(kms.CodeUnknownSuite, "KEK %s has unknown suite %q", k.ID, k.Suite)
		}
		vs, err := st.KEKVersions(ctx, k.ID)
		if err != nil {
			return 0, err
		}
		for _, v := range vs {
			if len(v.Handle) == 0 {
				continue // destroyed
			}
			ref := kms.KEKRef{KEK: k.ID, Version: v.Version, Suite: k.Suite}
			material, err := ob.open(s, refAAD(ref), v.Handle)
			if err != nil {
				return 0, kms.Errorf(kms.CodeWrongMasterKey, "KEK %s version %d does not open with the current master key", k.ID, v.Version)
			}
			h, err := nb.seal(s, refAAD(ref), material)
			suite.Wipe(material)
			if err != nil {
				return 0, err
			}
			changes = append(changes, kms.HandleChange{KEK: k.ID, Version: v.Version, Old: v.Handle, New: h})
		}
	}
	b, _ := json.Marshal(np)
	if err := st.Reseal(ctx, metaParams, raw, b, changes); err != nil {
		if errors.Is(err, kms.ErrConflict) {
			return 0, kms.Wrapf(kms.CodeConflict, err, "the keyring changed during rekey; nothing was changed, retry with other processes stopped")
		}
		return 0, err
	}
	return len(changes), nil
}
