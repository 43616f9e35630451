package release

import (
	"context"
	"testing"
	"time"
)

func TestCPUSlotsPriorityAndCancel(t *testing.T) {
	c := newCPUSlots(1, 0)
	ctx := context.Background()
	if err := c.acquire(ctx, prioStart); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	waitQueued := func(p, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; {
			c.mu.Lock()
			l := len(c.queue[p])
			c.mu.Unlock()
			if l == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("priority %d: %d waiters, want %d", p, l, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// A cancelled waiter leaves the queue and takes no slot.
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error)
	go func() { cancelled <- c.acquire(cctx, prioFinish) }()
	waitQueued(prioFinish, 1)
	cancel()
	if err := <-cancelled; err == nil {
		t.Fatal("a cancelled acquire succeeded")
	}
	waitQueued(prioFinish, 0)
	// Arriving start, finish, commit: served commit, finish, start.
	for _, p := range []int{prioStart, prioFinish, prioCommit} {
		go func(p int) {
			c.acquire(ctx, p)
			order <- p
			c.release()
		}(p)
		waitQueued(p, 1)
	}
	c.release()
	for _, want := range []int{prioCommit, prioFinish, prioStart} {
		if got := <-order; got != want {
			t.Fatalf("served priority %d, want %d", got, want)
		}
	}
	// All slots back: an acquire does not wait.
	done := make(chan struct{})
	go func() { c.acquire(ctx, prioStart); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a slot was lost")
	}
}
