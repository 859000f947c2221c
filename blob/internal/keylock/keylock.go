// Package keylock serializes operations on one key within a process.
package keylock

import "sync"

// Map hands out one mutex per key, dropping it when nobody holds it.
type Map struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	mu   sync.Mutex
	refs int
}

// Lock locks key and returns the unlock function.
func (l *Map) Lock(key string) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*entry)
	}
	e := l.m[key]
	if e == nil {
		e = &entry{}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}
