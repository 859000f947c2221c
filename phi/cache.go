package phi

import (
	"container/list"
	"strings"
	"sync"
	"time"
)

// cache is a bounded LRU with a TTL for derived keys.
type cache struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	now func() time.Time
	ll  *list.List
	m   map[string]*list.Element
}

type centry struct {
	key string
	val any
	exp time.Time
}

func newCache(max int, ttl time.Duration, now func() time.Time) *cache {
	return &cache{max: max, ttl: ttl, now: now, ll: list.New(), m: map[string]*list.Element{}}
}

func (c *cache) get(k string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	ce := e.Value.(*centry)
	if c.now().After(ce.exp) {
		c.ll.Remove(e)
		delete(c.m, k)
		return nil, false
	}
	c.ll.MoveToFront(e)
	return ce.val, true
}

func (c *cache) put(k string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		e.Value = &centry{k, v, c.now().Add(c.ttl)}
		c.ll.MoveToFront(e)
		return
	}
	c.m[k] = c.ll.PushFront(&centry{k, v, c.now().Add(c.ttl)})
	for c.ll.Len() > c.max {
		e := c.ll.Back()
		c.ll.Remove(e)
		delete(c.m, e.Value.(*centry).key)
	}
}

func (c *cache) drop(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.ll.Remove(e)
		delete(c.m, k)
	}
}

func (c *cache) dropPrefix(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if strings.HasPrefix(k, p) {
			c.ll.Remove(e)
			delete(c.m, k)
		}
	}
}
