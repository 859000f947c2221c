package fhirserver

import (
	"strings"
	"sync"
	"time"
)

// ---------------------------------------------------------------- cache

// ttlCache is a small map with per-entry expiry, bounded in size.
type ttlCache[V any] struct {
	mu  sync.Mutex
	m   map[string]ttlEntry[V]
	ttl time.Duration
	now func() time.Time
	max int
}

type ttlEntry[V any] struct {
	v   V
	exp time.Time
}

func newTTLCache[V any](ttl time.Duration, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{m: map[string]ttlEntry[V]{}, ttl: ttl, now: now, max: 100_000}
}

func (c *ttlCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	en, ok := c.m[k]
	if !ok || !c.now().Before(en.exp) {
		var zero V
		return zero, false
	}
	return en.v, true
}

func (c *ttlCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m) // bounded: start over rather than grow
	}
	c.m[k] = ttlEntry[V]{v: v, exp: c.now().Add(c.ttl)}
}

func (c *ttlCache[V]) dropSuffix(suffix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.Contains(k, suffix+"\x00") || strings.HasSuffix(k, suffix) {
			delete(c.m, k)
		}
	}
}
