package attest

import "sync"

// chainCache remembers signing certificates whose chain to a trusted root
// verified, by SHA-256 of their DER, so that a steady-state verification
// costs one ECDSA P-384 signature check. Validity times and revocation are
// still checked on every use.
type chainCache struct {
	mu    sync.RWMutex
	max   int
	m     map[[32]byte]*chainEntry
	order [][32]byte
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
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[fp] = e
	c.order = append(c.order, fp)
}

func (c *chainCache) clear() {
	c.mu.Lock()
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
