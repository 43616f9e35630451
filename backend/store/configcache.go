package store

import "sync"

// ConfigCache holds what a reader parsed from the configuration (reference
// values, policies), per key, together with the configuration version
// (ConfigVersionSQL) it was read at. A reader that read version n with its
// other rows may use an entry of the same version instead of reading and
// parsing again; any committed change moves the version and so retires
// every entry. The zero value is ready to use; values are shared, so
// callers must not modify them.
type ConfigCache[T any] struct {
	mu sync.Mutex
	m  map[string]configEntry[T]
}

type configEntry[T any] struct {
	n int64
	v T
}

// maxConfigEntries bounds a ConfigCache (keys are images: few).
const maxConfigEntries = 1024

// Get returns key's value read at version n; n == 0 (unknown) never hits.
func (c *ConfigCache[T]) Get(key string, n int64) (T, bool) {
	var zero T
	if n == 0 {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.n != n {
		return zero, false
	}
	return e.v, true
}

// Put records v as key's value read at version n.
func (c *ConfigCache[T]) Put(key string, n int64, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxConfigEntries {
		c.m = make(map[string]configEntry[T])
	}
	c.m[key] = configEntry[T]{n: n, v: v}
}
