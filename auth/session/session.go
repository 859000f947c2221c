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

	mu   sync.Mutex
	seen map[string]*idleEntry
}

type idleEntry struct {
	last      time.Time
	loggedOff time.Time
}

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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]*idleEntry{}
	}
	e, ok := s.seen[key]
	if !ok {
		if len(s.seen) >= max {
			s.evict()
		}
		s.seen[key] = &idleEntry{last: now}
		return nil
	}
	if !e.loggedOff.IsZero() && !issued.After(e.loggedOff) {
		return &Error{CodeIdle, "session was logged off after inactivity; authenticate again"}
	}
	if e.loggedOff.IsZero() && now.Sub(e.last) > timeout {
		if issued.After(e.last.Add(timeout)) {
			// The credential was obtained after the session had gone
			// idle: the caller authenticated again, a new session starts.
			e.last = now
			return nil
		}
		e.loggedOff = now
		return &Error{CodeIdle, "session was logged off after inactivity; authenticate again"}
	}
	if !e.loggedOff.IsZero() {
		e.loggedOff = time.Time{} // a fresh credential starts a new session
	}
	e.last = now
	return nil
}

// Logoff ends a session at once (an explicit logout).
func (s *Idle) Logoff(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]*idleEntry{}
	}
	s.seen[key] = &idleEntry{last: s.now(), loggedOff: s.now()}
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
	Now         func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time
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
	l.mu.Unlock()
}
