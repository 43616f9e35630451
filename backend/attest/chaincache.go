package attest

import (
	"sync"
	"sync/atomic"
)

// chainCache remembers signing certificates whose chain to a trusted root
// verified, by SHA-256 of their DER, so that a steady-state verification
// costs one ECDSA P-384 signature check. Validity times and revocation are
// still checked on every use.
type chainCache struct {
	tables atomic.Int64 // entries with a p384 table (reportsig.go)
	mu     sync.RWMutex
	max    int
	m      map[[32]byte]*chainEntry
	order  [][32]byte
}

func newChainCache(max int) *chainCache {
	return &chainCache{max: max, m: map[[32]byte]*chainEntry{}}
}

func (c *chainCache) get(fp [32]byte) *chainEntry {
	if c.max <= 0 {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[fp]
}

func (c *chainCache) put(fp [32]byte, e *chainEntry) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[fp]; ok {
		return
	}
	for len(c.order) >= c.max {
		if old := c.m[c.order[0]]; old != nil {
			old.key.drop()
		}
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	e.key.mu.Lock()
	e.key.budget = &c.tables
	e.key.mu.Unlock()
	c.m[fp] = e
	c.order = append(c.order, fp)
}

func (c *chainCache) clear() {
	c.mu.Lock()
	for _, e := range c.m {
		e.key.drop()
	}
	c.m = map[[32]byte]*chainEntry{}
	c.order = nil
	c.mu.Unlock()
}

// Len is the number of cached chains.
func (c *chainCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
