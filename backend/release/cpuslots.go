package release

import (
	"context"
	"errors"
	"sync"
)

// errQueueFull means too many requests wait for a slot at prioStart.
var errQueueFull = errors.New("too many requests waiting for a processor")

// Priorities of the processor slots, highest first.
const (
	// prioCommit: the committer running a batch's decisions (the serial
	// part: while it waits for a processor, every decision does).
	prioCommit = iota
	// prioFinish: sealing a decided request's answer.
	prioFinish
	// prioStart: verifying a new request's evidence.
	prioStart
	numPrio
)

// cpuSlots bounds the goroutines doing CPU-heavy work (verifying, sealing,
// running a batch of decisions) to the processors. Without it, under a
// storm the committer, one goroutine, would wait for a processor behind
// hundreds of runnable verifiers at every system call, and every decision
// with it. Waiters are served by priority (the committer, then requests
// that finish, then requests that start: a decided request is not queued
// behind every request that arrived after it, which bounds the service
// time without costing throughput), in arrival order within one.
//
// The queue of requests that start is bounded (maxStart waiters): each
// waiter holds its decoded evidence, so beyond the bound acquire refuses at
// once (errQueueFull) and the caller answers "busy, retry" instead of
// letting memory grow with the queue. The committer and requests that
// finish are never refused: their number is bounded by those that started.
type cpuSlots struct {
	mu       sync.Mutex
	free     int
	maxStart int
	queue    [numPrio][]chan struct{} // FIFO waiters; a closed channel is a granted slot
	peak     int                      // most waiters at prioStart seen
}

// newCPUSlots makes n slots whose prioStart queue holds at most maxStart
// waiters (zero: unbounded).
func newCPUSlots(n, maxStart int) *cpuSlots { return &cpuSlots{free: max(1, n), maxStart: maxStart} }

// peakWaiting is the most requests that ever waited at prioStart at once.
func (c *cpuSlots) peakWaiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

// acquire waits for a slot at priority prio.
func (c *cpuSlots) acquire(ctx context.Context, prio int) error {
	c.mu.Lock()
	if c.free > 0 && !c.waitersAbove(prio+1) {
		c.free--
		c.mu.Unlock()
		return nil
	}
	if prio == prioStart && c.maxStart > 0 && len(c.queue[prio]) >= c.maxStart {
		c.mu.Unlock()
		return errQueueFull
	}
	w := make(chan struct{})
	c.queue[prio] = append(c.queue[prio], w)
	if prio == prioStart {
		c.peak = max(c.peak, len(c.queue[prio]))
	}
	c.mu.Unlock()
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		q := c.queue[prio]
		for i, x := range q {
			if x == w {
				c.queue[prio] = append(q[:i], q[i+1:]...)
				c.mu.Unlock()
				return ctx.Err()
			}
		}
		c.mu.Unlock()
		c.release() // granted meanwhile: hand the slot on
		return ctx.Err()
	}
}

// waitersAbove reports whether anyone waits at a priority below limit
// (that is, a higher one). Called with mu held.
func (c *cpuSlots) waitersAbove(limit int) bool {
	for p := 0; p < limit; p++ {
		if len(c.queue[p]) > 0 {
			return true
		}
	}
	return false
}

// release gives a slot back, to the first waiter of the highest priority.
func (c *cpuSlots) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.queue {
		if q := c.queue[p]; len(q) > 0 {
			w := q[0]
			q[0] = nil
			c.queue[p] = q[1:]
			close(w)
			return
		}
	}
	c.free++
}
