// Package session holds the per-caller state that authentication needs
// beyond a valid token: idle timeout with automatic logoff, lockout after
// repeated failures (MLPS 2.0 8.1.4.1), and IP allowlists per client and per
// organisation (seed 001).
package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"phix/errcode"
)

// Code is a stable reason a session check refused a caller.
type Code string

// The refusal codes.
const (
	CodeIdle      Code = "session-idle-timeout" // logged off after inactivity; authenticate again
	CodeLocked    Code = "session-locked-out"   // too many failures
	CodeIPRefused Code = "session-ip-refused"   // source address not in the allowlist
)

// Error is a refusal; its text names no principal, address or token.
type Error struct {
	Code   Code
	Detail string
}

func (e *Error) Error() string { return "session: " + string(e.Code) + ": " + e.Detail }

// CodeOf returns the session Code in err's chain, or "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Idle logs a session off after Timeout without activity. A session is
// named by its key (a token's sid, or subject and client); once logged off,
// tokens issued before the logoff stay refused: the caller must
// authenticate again and present a newer token.
type Idle struct {
	// Timeout is the inactivity limit (default 15 minutes).
	Timeout time.Duration
	// Max bounds the sessions tracked (default 100000); beyond it the
	// least recently active one is forgotten.
	Max int
	Now func() time.Time
	// Shared, when set, keeps the sessions' activity where every replica
	// sees it (SQLState): a session idle here but active on another
	// replica is not logged off, and a logoff holds on every replica.
	// Activity is read and written through at most every SyncEvery per
	// session (default 10 s, far below Timeout), and read on a miss or
	// before a logoff, so a logoff on one replica holds on the others
	// within SyncEvery.
	Shared    ActivityStore
	SyncEvery time.Duration

	mu   sync.Mutex
	seen map[string]*idleEntry
}

type idleEntry struct {
	last      time.Time
	loggedOff time.Time
	synced    time.Time // last write to Shared
}

// sharedTimeout bounds one call to the shared store from Touch and Logoff.
const sharedTimeout = 2 * time.Second

func (s *Idle) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Touch records activity on key by a credential issued at issued. It
// refuses (CodeIdle) a session idle for longer than Timeout, and any
// credential issued before that logoff.
func (s *Idle) Touch(key string, issued time.Time) error {
	timeout, max := s.Timeout, s.Max
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	if max <= 0 {
		max = 100000
	}
	now := s.now()
	if s.Shared != nil {
		s.mu.Lock()
		e := s.seen[key]
		stale := e == nil || !e.loggedOff.IsZero() || now.Sub(e.last) > timeout || now.Sub(e.synced) >= s.syncEvery()
		s.mu.Unlock()
		if stale {
			// Another replica may have seen the session since, or
			// logged it off: its state first.
			s.load(key, max)
		}
	}
	s.mu.Lock()
	save, err := s.touchLocked(key, issued, now, timeout, max)
	var snap Activity
	if save {
		e := s.seen[key]
		e.synced = now
		snap = Activity{Last: e.last, LoggedOff: e.loggedOff}
	}
	s.mu.Unlock()
	if save {
		s.save(key, snap)
	}
	return err
}

// touchLocked is Touch's decision; save reports that the shared store
// should hear of the session (a logoff, a new session, or SyncEvery since
// the last write).
func (s *Idle) touchLocked(key string, issued, now time.Time, timeout time.Duration, max int) (save bool, err error) {
	if s.seen == nil {
		s.seen = map[string]*idleEntry{}
	}
	shared := s.Shared != nil
	e, ok := s.seen[key]
	if !ok {
		if len(s.seen) >= max {
			s.evict()
		}
		s.seen[key] = &idleEntry{last: now}
		return shared, nil
	}
	if !e.loggedOff.IsZero() && !issued.After(e.loggedOff) {
		return false, &Error{CodeIdle, "session was logged off after inactivity; authenticate again"}
	}
	if e.loggedOff.IsZero() && now.Sub(e.last) > timeout {
		if issued.After(e.last.Add(timeout)) {
			// The credential was obtained after the session had gone
			// idle: the caller authenticated again, a new session starts.
			e.last = now
			return shared, nil
		}
		e.loggedOff = now
		return shared, &Error{CodeIdle, "session was logged off after inactivity; authenticate again"}
	}
	renewed := !e.loggedOff.IsZero()
	if renewed {
		e.loggedOff = time.Time{} // a fresh credential starts a new session
	}
	e.last = now
	return shared && (renewed || now.Sub(e.synced) >= s.syncEvery()), nil
}

func (s *Idle) syncEvery() time.Duration {
	if s.SyncEvery > 0 {
		return s.SyncEvery
	}
	return 10 * time.Second
}

// load merges the shared state of key into the local one.
func (s *Idle) load(key string, max int) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	a, ok, err := s.Shared.LoadActivity(ctx, key)
	if err != nil || !ok {
		return // unreachable store: the local state decides
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]*idleEntry{}
	}
	e := s.seen[key]
	if e == nil {
		if len(s.seen) >= max {
			s.evict()
		}
		e = &idleEntry{synced: s.now()}
		s.seen[key] = e
	}
	if a.Last.After(e.last) {
		e.last = a.Last
	}
	if a.LoggedOff.After(e.loggedOff) {
		e.loggedOff = a.LoggedOff
	}
}

func (s *Idle) save(key string, a Activity) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	_ = s.Shared.SaveActivity(ctx, key, a) // best effort: the local state still holds
}

// Logoff ends a session at once (an explicit logout).
func (s *Idle) Logoff(key string) {
	now := s.now()
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[string]*idleEntry{}
	}
	s.seen[key] = &idleEntry{last: now, loggedOff: now, synced: now}
	s.mu.Unlock()
	if s.Shared != nil {
		s.save(key, Activity{Last: now, LoggedOff: now})
	}
}

func (s *Idle) evict() {
	var victim string
	var oldest time.Time
	for k, e := range s.seen {
		if victim == "" || e.last.Before(oldest) {
			victim, oldest = k, e.last
		}
	}
	delete(s.seen, victim)
}

// Lockout counts failed authentications per principal and locks it out
// after MaxFailures within Window, for LockFor, through an
// errcode.LockoutStore (the same store and semantics as the PHI-6004/6005
// lockouts: a longer lock is never shortened).
type Lockout struct {
	MaxFailures int           // default 5
	Window      time.Duration // default 15 minutes
	LockFor     time.Duration // default 15 minutes (errcode.LockoutDuration)
	Store       errcode.LockoutStore
	// Failures, when set, counts failures where every replica sees them
	// (SQLState); nil counts them in this process.
	Failures FailureLog
	Now      func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time
	// failed marks principals this process recorded a shared failure
	// for, so that Success clears the shared count only when needed.
	failed map[string]bool
}

// NewLockout returns a Lockout with the defaults over an in-memory store.
func NewLockout() *Lockout { return &Lockout{Store: errcode.NewMemoryLockouts(100000)} }

func (l *Lockout) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// LockCode is the PHI code a login lockout is recorded with: the caller is
// not authorised to act until it ends.
const LockCode = errcode.ProviderNotAuthorized

// Check refuses a locked-out principal (CodeLocked).
func (l *Lockout) Check(ctx context.Context, principal string) error {
	_, _, locked, err := l.Store.Locked(ctx, principal, l.now())
	if err != nil {
		return err
	}
	if locked {
		return &Error{CodeLocked, "too many failed attempts; try again later"}
	}
	return nil
}

// Failure records a failed attempt and reports whether it locked the
// principal out.
func (l *Lockout) Failure(ctx context.Context, principal string) (bool, error) {
	max, window, lockFor := l.MaxFailures, l.Window, l.LockFor
	if max <= 0 {
		max = 5
	}
	if window <= 0 {
		window = 15 * time.Minute
	}
	if lockFor <= 0 {
		lockFor = errcode.LockoutDuration
	}
	now := l.now()
	if l.Failures != nil {
		n, err := l.Failures.RecordFailure(ctx, principal, now, window)
		if err != nil {
			return false, err
		}
		l.mu.Lock()
		if l.failed == nil || len(l.failed) > 100000 {
			l.failed = map[string]bool{}
		}
		l.failed[principal] = n < max
		l.mu.Unlock()
		if n < max {
			return false, nil
		}
		if err := l.Failures.ClearFailures(ctx, principal); err != nil {
			return false, err
		}
		return true, l.Store.Lock(ctx, principal, now.Add(lockFor), LockCode)
	}
	l.mu.Lock()
	if l.fails == nil {
		l.fails = map[string][]time.Time{}
	}
	if len(l.fails) > 100000 {
		l.fails = map[string][]time.Time{} // bounded: counting restarts under a flood; locks already set stay
	}
	kept := l.fails[principal][:0]
	for _, t := range l.fails[principal] {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	kept = append(kept, now)
	lock := len(kept) >= max
	if lock {
		delete(l.fails, principal)
	} else {
		l.fails[principal] = kept
	}
	l.mu.Unlock()
	if !lock {
		return false, nil
	}
	return true, l.Store.Lock(ctx, principal, now.Add(lockFor), LockCode)
}

// Success clears the failure count of principal.
func (l *Lockout) Success(principal string) {
	l.mu.Lock()
	delete(l.fails, principal)
	shared := l.failed[principal]
	delete(l.failed, principal)
	l.mu.Unlock()
	if shared && l.Failures != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		_ = l.Failures.ClearFailures(ctx, principal) // best effort: the window ends them anyway
	}
}
