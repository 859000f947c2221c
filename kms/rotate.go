package kms

import (
	"context"
	"errors"

	"phix/suite"
)

// RotateOptions tune a rotation job.
type RotateOptions struct {
	// BatchSize is how many data keys are re-wrapped between progress
	// saves (default 100).
	BatchSize int
	// Progress, if set, is called after every saved batch.
	Progress func(Rotation)
}

// Rotate makes a new version of a KEK, current from now on, and records a
// rotation job that re-wraps the KEK's data keys from older versions to the
// new one; run it with ResumeRotation. Data sealed under the data keys is not
// touched. ErrRotationRunning if the previous job of this KEK is unfinished.
func (m *Manager) Rotate(ctx context.Context, kekID string) (Rotation, error) {
	if _, _, err := splitKEKID(kekID); err != nil {
		return Rotation{}, err
	}
	if r, err := m.st.Rotation(ctx, kekID); err == nil && !r.Finished {
		return r, Errorf(CodeRotationRunning, "rotation of %s to version %d is unfinished: resume it", kekID, r.ToVersion)
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return Rotation{}, err
	}
	k, err := m.st.KEK(ctx, kekID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Rotation{}, Errorf(CodeNotFound, "no KEK %s", kekID)
		}
		return Rotation{}, err
	}
	n := k.Current + 1
	v, err := m.newVersion(ctx, k, n)
	if err == nil {
		if err = m.st.AddKEKVersion(ctx, v); err != nil {
			m.discard(ctx, k, v)
		}
	}
	m.forgetKEK(kekID)
	if err := m.record(ctx, Op{Action: "rotate", Key: kekID, Version: n}, err); err != nil {
		return Rotation{}, err
	}
	total := 0
	if k.Purpose == PurposeData {
		if total, err = m.st.CountDataKeysBelow(ctx, kekID, n); err != nil {
			return Rotation{}, err
		}
	}
	now := m.now().UTC()
	r := Rotation{KEK: kekID, ToVersion: n, Total: total, Finished: total == 0, Started: now, Updated: now}
	if err := m.st.PutRotation(ctx, r); err != nil {
		return Rotation{}, err
	}
	return r, nil
}

// ResumeRotation runs (or resumes after a crash or cancellation) the rotation
// job of a KEK until every data key is wrapped under the job's version.
// Progress is saved after each batch; each data key is re-wrapped at most once,
// because the store swaps a wrapping only if it is still the old one. It
// returns the job state; on cancellation the state saved so far and ctx.Err().
func (m *Manager) ResumeRotation(ctx context.Context, kekID string, opt RotateOptions) (Rotation, error) {
	r, err := m.st.Rotation(ctx, kekID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Rotation{}, Errorf(CodeNotFound, "no rotation of %s", kekID)
		}
		return Rotation{}, err
	}
	if r.Finished {
		return r, nil
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 100
	}
	k, err := m.st.KEK(ctx, kekID)
	if err != nil {
		return r, err
	}
	to, err := m.st.KEKVersion(ctx, kekID, r.ToVersion)
	if err != nil {
		return r, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		batch, err := m.st.DataKeysBelow(ctx, kekID, r.ToVersion, r.Cursor, opt.BatchSize)
		if err != nil {
			return r, err
		}
		for _, dk := range batch {
			if err := ctx.Err(); err != nil {
				// Save what the finished keys achieved before stopping.
				return r, errors.Join(err, m.saveProgress(ctx, &r))
			}
			if err := m.rewrap(ctx, k, to, dk); err != nil {
				return r, errors.Join(err, m.saveProgress(ctx, &r))
			}
			r.Cursor = dk.ID
		}
		if len(batch) < opt.BatchSize {
			r.Finished = true
		}
		if err := m.saveProgress(ctx, &r); err != nil {
			return r, err
		}
		if opt.Progress != nil {
			opt.Progress(r)
		}
		if r.Finished {
			return r, m.record(ctx, Op{Action: "rotation-finished", Key: kekID, Version: r.ToVersion}, nil)
		}
	}
}

// rewrap moves one data key to version to. A key whose KEK version is
// already destroyed is left as it is: it is erased, nothing can re-wrap it.
func (m *Manager) rewrap(ctx context.Context, k KEK, to KEKVersion, dk DataKey) error {
	key, _, err := m.unwrapBlob(ctx, dk.Wrapped, dk.ID)
	switch {
	case errors.Is(err, ErrDestroyed):
		return nil
	case err != nil:
		return err
	}
	defer suite.Wipe(key)
	blob, err := m.wrapWith(ctx, k, to, dk.ID, key)
	if err != nil {
		return err
	}
	from := dk.KEKVersion
	dk.Wrapped, dk.KEKVersion = blob, to.Version
	err = m.st.RewrapDataKey(ctx, dk, from)
	if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return nil // re-wrapped by another worker, or destroyed meanwhile
	}
	return err
}

// saveProgress recomputes done from what remains, so a crash between a
// re-wrap and a save never miscounts, and persists the job.
func (m *Manager) saveProgress(ctx context.Context, r *Rotation) error {
	ctx = context.WithoutCancel(ctx)
	left, err := m.st.CountDataKeysBelow(ctx, r.KEK, r.ToVersion)
	if err != nil {
		return err
	}
	r.Done = max(0, r.Total-left)
	r.Updated = m.now().UTC()
	return m.st.PutRotation(ctx, *r)
}

// SetMinDecryptionVersion retires the versions of a KEK below version: blobs
// under them no longer unwrap. It refuses while stored data keys are still
// wrapped under a retired version (finish the rotation first) unless force.
func (m *Manager) SetMinDecryptionVersion(ctx context.Context, kekID string, version int, force bool) error {
	k, err := m.st.KEK(ctx, kekID)
	if err != nil {
		return err
	}
	if version < 1 || version > k.Current {
		return Errorf(CodeBadInput, "min_decryption_version must be in 1..%d", k.Current)
	}
	if !force {
		n, err := m.st.CountDataKeysBelow(ctx, kekID, version)
		if err != nil {
			return err
		}
		if n > 0 {
			return Errorf(CodeConflict, "%d data keys of %s are still wrapped under versions below %d: finish the rotation first", n, kekID, version)
		}
	}
	err = m.st.SetMinDecryption(ctx, kekID, version)
	m.forgetKEK(kekID)
	if err == nil {
		for v := 1; v < version; v++ {
			m.forget(kekID, v)
		}
	}
	return m.record(ctx, Op{Action: "set-min-decryption", Key: kekID, Version: version}, err)
}
