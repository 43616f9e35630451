package app

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
	"keyholder/internal/testclock"
)

// Forty concurrent logins from one address with names that are not
// officers (so custody's per-officer reservation does not apply): the
// address's own reservation lets only a handful run the KDF, and a right
// passphrase from that address is throttled afterwards; another address
// is not.
func TestLoginsThrottledPerSource(t *testing.T) {
	s, kdfs := newKDFCountingServices(t)
	from := func(src string) Caller { c := anon(s); c.Source = src; return c }

	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.Session.Login(from("203.0.113.7"), fmt.Sprintf("nobody%d", i), "wrong passphrase"); code(err) != CodeUnauthorized {
				t.Errorf("login %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := kdfs.Load(); n > sourceFreeAttempts {
		t.Fatalf("%d of 40 concurrent logins from one address ran the KDF, want at most %d", n, sourceFreeAttempts)
	}
	before := kdfs.Load()
	if _, err := s.Session.Login(from("203.0.113.7"), "alice", "alice's passphrase"); code(err) != CodeUnauthorized {
		t.Fatalf("right passphrase from the throttled address: %v", err)
	}
	if kdfs.Load() != before {
		t.Fatal("a throttled login ran the KDF")
	}
	if _, err := s.Session.Login(from("198.51.100.2"), "alice", "alice's passphrase"); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

func TestLoginLimiterCapsChecksInFlight(t *testing.T) {
	l := newLoginLimiter()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var dones []func(bool, time.Time)
	for range maxKDFPerSource {
		done, err := l.reserve("a", now)
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, done)
	}
	if _, err := l.reserve("a", now); code(err) != CodeUnauthorized {
		t.Fatalf("check beyond the in-flight cap: %v", err)
	}
	if _, err := l.reserve("b", now); err != nil {
		t.Fatalf("another source: %v", err)
	}
	dones[0](true, now)
	if _, err := l.reserve("a", now); err != nil {
		t.Fatalf("after one finished: %v", err)
	}
}

// A login runs under its caller's context (the HTTP request's): one whose
// caller went away before its check ran never runs the KDF (issue 12,
// item 3).
func TestAbandonedLoginRunsNoKDF(t *testing.T) {
	s, kdfs := newKDFCountingServices(t)
	gone, leave := context.WithCancel(context.Background())
	leave()
	c := anon(s)
	c.Source, c.ctx = "203.0.113.9", gone
	for _, name := range []string{"alice", "nobody"} {
		if _, err := s.Session.Login(c, name, "alice's passphrase"); err == nil {
			t.Fatalf("an abandoned login of %s succeeded", name)
		}
	}
	if n := kdfs.Load(); n != 0 {
		t.Fatalf("%d KDFs ran for abandoned logins", n)
	}
	c.ctx = context.Background()
	if _, err := s.Session.Login(c, "alice", "alice's passphrase"); err != nil {
		t.Fatalf("a login from the same address afterwards: %v", err)
	}
}

// newKDFCountingServices is a web console with officer alice set up, and
// the number of passphrase KDFs started since.
func newKDFCountingServices(t *testing.T) (*Services, *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db := storetest.Open(t, store.Options{})
	clk := testclock.New(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC))
	kdfs := new(atomic.Int32)
	s := New(ctx, Config{Mode: "web", Now: clk.Now, CustodyOptions: custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, Now: clk.Now,
		KDFStarted: func() { kdfs.Add(1) }}}, db, NewHub())
	setupAs(t, s, "alice", "alice's passphrase")
	kdfs.Store(0)
	return s, kdfs
}
