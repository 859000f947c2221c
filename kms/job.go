package kms

import (
	"context"
	"errors"
	"sync"
)

// RotationJob is a rotation running in the background.
type RotationJob struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	last Rotation
	err  error
}

// StartRotationJob runs ResumeRotation of kekID in a goroutine (start the
// job with Rotate first). Cancel stops it with its progress saved; a later
// job, in this process or another, resumes where it stopped.
func (m *Manager) StartRotationJob(ctx context.Context, kekID string, opt RotateOptions) *RotationJob {
	ctx, cancel := context.WithCancel(ctx)
	j := &RotationJob{cancel: cancel, done: make(chan struct{})}
	if r, err := m.st.Rotation(ctx, kekID); err == nil {
		j.last = r
	}
	user := opt.Progress
	opt.Progress = func(r Rotation) {
		j.mu.Lock()
		j.last = r
		j.mu.Unlock()
		if user != nil {
			user(r)
		}
	}
	go func() {
		defer close(j.done)
		defer cancel()
		r, err := m.ResumeRotation(ctx, kekID, opt)
		j.mu.Lock()
		if r.KEK != "" {
			j.last = r
		}
		j.err = err
		j.mu.Unlock()
	}()
	return j
}

// Progress returns the last saved state of the job.
func (j *RotationJob) Progress() Rotation {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last
}

// Cancel stops the job; its progress stays saved.
func (j *RotationJob) Cancel() { j.cancel() }

// Done is closed when the job ends.
func (j *RotationJob) Done() <-chan struct{} { return j.done }

// Wait waits for the job to end and returns its final state and error.
func (j *RotationJob) Wait() (Rotation, error) {
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last, j.err
}

// ResumeUnfinished resumes every unfinished rotation of the keyring, one
// after the other; a node calls it at start so a rotation interrupted by a
// crash completes. It returns the KEKs it finished.
func (m *Manager) ResumeUnfinished(ctx context.Context, opt RotateOptions) ([]string, error) {
	keks, err := m.st.KEKs(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, k := range keks {
		r, err := m.st.Rotation(ctx, k.ID)
		if errors.Is(err, ErrNotFound) || (err == nil && r.Finished) {
			continue
		}
		if err != nil {
			return done, err
		}
		if _, err := m.ResumeRotation(ctx, k.ID, opt); err != nil {
			return done, err
		}
		done = append(done, k.ID)
	}
	return done, nil
}
