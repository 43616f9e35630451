// Package testclock is the one fake clock of Keyholder's tests: a time that
// moves only when the test says so. Packages take their clock as a
// func() time.Time (store.Options.Now, custody.Options.Now, app.Config.Now,
// …); tests hand them Clock.Now.
package testclock

import (
	"sync"
	"time"
)

// Clock is a settable clock, safe for concurrent use (services read it from
// their own goroutines while the test advances it).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a Clock that reads t until advanced.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (backward for a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
