// Package periodic keeps a value read from a store that several replicas
// share (the revocation list, the IP allowlists) and reads it again at most
// once per interval: a change made by any replica is seen by every other
// within the interval, for one query per interval instead of one per
// request. There is no stale fallback: when a read fails the caller gets
// the error and refuses (fail closed).
package periodic

import (
	"context"
	"sync"
	"time"
)

// Value is the kept value; the zero Value is not usable: use New.
type Value[T any] struct {
	load func(ctx context.Context, now time.Time) (T, error)

	mu     sync.RWMutex // guards v, ok and loaded
	v      T
	ok     bool
	loaded time.Time
	reload chan struct{} // one read at a time; waiting for it gives up with ctx
}

// New returns a Value read by load (given the time the read is for).
func New[T any](load func(ctx context.Context, now time.Time) (T, error)) *Value[T] {
	return &Value[T]{load: load, reload: make(chan struct{}, 1)}
}

// Get returns the value as read at most every before now, reading it again
// when older (or when now is before the last read: a clock that went back).
// Concurrent callers share one read.
func (p *Value[T]) Get(ctx context.Context, now time.Time, every time.Duration) (T, error) {
	if v, ok := p.fresh(now, every); ok {
		return v, nil
	}
	var zero T
	select {
	case p.reload <- struct{}{}:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	defer func() { <-p.reload }()
	if v, ok := p.fresh(now, every); ok {
		return v, nil // another caller read it meanwhile
	}
	v, err := p.load(ctx, now)
	if err != nil {
		return zero, err
	}
	p.mu.Lock()
	p.v, p.ok, p.loaded = v, true, now
	p.mu.Unlock()
	return v, nil
}

func (p *Value[T]) fresh(now time.Time, every time.Duration) (T, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.ok || now.Sub(p.loaded) >= every || now.Before(p.loaded) {
		var zero T
		return zero, false
	}
	return p.v, true
}

// Invalidate makes the next Get read again (a change made through this
// process is seen by it at once).
func (p *Value[T]) Invalidate() {
	p.mu.Lock()
	p.ok = false
	p.mu.Unlock()
}
