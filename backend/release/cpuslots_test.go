package release

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"keyholder/backend/release/wire"
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

// The queue of requests that start is bounded: beyond it acquire refuses at
// once; requests that finish and the committer are never refused.
func TestCPUSlotsBoundedStartQueue(t *testing.T) {
	c := newCPUSlots(1, 2)
	ctx := context.Background()
	if err := c.acquire(ctx, prioStart); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 4)
	for i := 0; i < 2; i++ {
		go func() { got <- c.acquire(ctx, prioStart) }()
	}
	for {
		c.mu.Lock()
		n := len(c.queue[prioStart])
		c.mu.Unlock()
		if n == 2 {
			break
		}
		runtime.Gosched()
	}
	if err := c.acquire(ctx, prioStart); !errors.Is(err, errQueueFull) {
		t.Fatalf("third waiter: %v", err)
	}
	go func() { got <- c.acquire(ctx, prioFinish) }()
	go func() { got <- c.acquire(ctx, prioCommit) }()
	for i := 0; i < 4; i++ {
		c.release()
		if err := <-got; err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
	}
	if c.peakWaiting() != 2 {
		t.Fatalf("peak waiting = %d, want 2", c.peakWaiting())
	}
}

// panickingVerifier panics in Verify, as a parser bug in it would.
type panickingVerifier struct{ fakeVerifier }

func (panickingVerifier) Verify(context.Context, wire.Evidence, ImageRef, [64]byte) (Claims, error) {
	panic("verifier bug")
}

// TestVerifierPanicGivesItsCPUSlotBack: a panic while verifying (the HTTP
// server recovers it and the console goes on) gives the CPU slot back, so
// that a few bad requests do not leave the console unable to verify.
func TestVerifierPanicGivesItsCPUSlotBack(t *testing.T) {
	e := newEnv(t)
	g := guest{vm: "vm-panic", vol: e.volume("panic"), chip: 1, meas: 1, launch: 1}
	svc, err := New(Config{DB: e.db, Verifier: panickingVerifier{}, Secrets: e.cust, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	slots := svc.cpu.free
	for i := 0; i < slots; i++ {
		a := e.request(g, wire.PurposeBoot, 0)
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the verifier's panic did not reach the caller")
				}
			}()
			svc.Release(e.ctx, a.req)
		}()
	}
	svc.cpu.mu.Lock()
	free := svc.cpu.free
	svc.cpu.mu.Unlock()
	if free != slots {
		t.Fatalf("%d of %d CPU slots free after verifier panics", free, slots)
	}
}
