package errcode

import (
	"context"
	"sync"
	"time"
)

// LockoutStore keeps lockouts by principal. The in-memory MemoryLockouts
// serves one node; a cluster plugs in a shared store (database, cache) here.
type LockoutStore interface {
	// Lock records that principal is locked until until (zero: until cleared).
	Lock(ctx context.Context, principal string, until time.Time, c Code) error
	// Locked reports the lock of principal, if any, at now.
	Locked(ctx context.Context, principal string, now time.Time) (until time.Time, c Code, locked bool, err error)
	// Clear removes principal's lock (an operator action).
	Clear(ctx context.Context, principal string) error
}

// Lockout applies the table's lockout column: after an error whose code
// carries a lockout the principal is refused until it ends.
type Lockout struct {
	Store LockoutStore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewLockout returns a Lockout over an in-memory store.
func NewLockout() *Lockout { return &Lockout{Store: NewMemoryLockouts(10000)} }

func (l *Lockout) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Record applies err's lockout to principal, if its code has one. It reports
// whether a lock was set.
func (l *Lockout) Record(ctx context.Context, principal string, err error) (bool, error) {
	d, ok := Lookup(CodeOf(err))
	if !ok || (d.Lockout == 0 && !d.Immediate) {
		return false, nil
	}
	var until time.Time
	if !d.Immediate {
		until = l.now().Add(d.Lockout)
	}
	return true, l.Store.Lock(ctx, principal, until, d.Code)
}

// Check returns nil when principal may proceed, or an *Error with the code
// that locked it and the remaining seconds in the detail.
func (l *Lockout) Check(ctx context.Context, principal string) error {
	now := l.now()
	until, c, locked, err := l.Store.Locked(ctx, principal, now)
	if err != nil {
		return err
	}
	if !locked {
		return nil
	}
	if until.IsZero() {
		return New(c, "principal locked out until cleared by an operator")
	}
	return New(c, "principal locked out for %d more seconds", int((until.Sub(now)+time.Second-1)/time.Second))
}

// MemoryLockouts is an in-memory LockoutStore bounded in size: when full,
// expired locks are dropped first, then the lock that ends soonest.
type MemoryLockouts struct {
	mu    sync.Mutex
	max   int
	locks map[string]lock
}

type lock struct {
	until time.Time
	code  Code
}

// NewMemoryLockouts returns a store holding at most max principals.
func NewMemoryLockouts(max int) *MemoryLockouts {
	if max < 1 {
		max = 1
	}
	return &MemoryLockouts{max: max, locks: make(map[string]lock)}
}

// Lock implements LockoutStore.
func (m *MemoryLockouts) Lock(_ context.Context, principal string, until time.Time, c Code) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.locks[principal]; ok && (old.until.IsZero() || (!until.IsZero() && old.until.After(until))) {
		return nil // keep the longer lock
	}
	if _, ok := m.locks[principal]; !ok && len(m.locks) >= m.max {
		m.evict()
	}
	m.locks[principal] = lock{until, c}
	return nil
}

func (m *MemoryLockouts) evict() {
	now := time.Now()
	victim, first := "", true
	var soonest time.Time
	for p, l := range m.locks {
		if !l.until.IsZero() && l.until.Before(now) {
			delete(m.locks, p)
			continue
		}
		if !l.until.IsZero() && (first || l.until.Before(soonest)) {
			victim, soonest, first = p, l.until, false
		}
	}
	if len(m.locks) >= m.max && victim != "" {
		delete(m.locks, victim)
	}
}

// Locked implements LockoutStore.
func (m *MemoryLockouts) Locked(_ context.Context, principal string, now time.Time) (time.Time, Code, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.locks[principal]
	if !ok {
		return time.Time{}, "", false, nil
	}
	if !l.until.IsZero() && !now.Before(l.until) {
		delete(m.locks, principal)
		return time.Time{}, "", false, nil
	}
	return l.until, l.code, true, nil
}

// Clear implements LockoutStore.
func (m *MemoryLockouts) Clear(_ context.Context, principal string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.locks, principal)
	return nil
}
