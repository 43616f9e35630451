package custody

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// Forty concurrent wrong passphrases: each reserves its attempt before the
// KDF runs, so only the free attempts are checked at all, the rest are
// throttled, and the right passphrase is throttled afterwards too (issue
// 12: before, all forty were checked and the right one then succeeded).
func TestConcurrentWrongPassphrasesAreThrottled(t *testing.T) {
	s, c := newTestService(t)
	var kdfs atomic.Int32
	s2 := New(s.DB(), Options{KDF: testKDF, Now: c.Now, KDFStarted: func() { kdfs.Add(1) }})
	const n = 40
	var wg sync.WaitGroup
	var wrong, throttled, other atomic.Int32
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s2.Authenticate(context.Background(), "alice", []byte("wrong passphrase!"))
			var te *ThrottledError
			switch {
			case errors.Is(err, ErrWrongPassphrase):
				wrong.Add(1)
			case errors.As(err, &te):
				throttled.Add(1)
			default:
				other.Add(1)
				t.Errorf("unexpected result: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := kdfs.Load(); got > freeAttempts {
		t.Fatalf("%d of %d concurrent wrong passphrases ran the KDF, want at most %d", got, n, freeAttempts)
	}
	if wrong.Load() != kdfs.Load() || throttled.Load() != n-wrong.Load() {
		t.Fatalf("wrong %d, throttled %d, KDFs %d", wrong.Load(), throttled.Load(), kdfs.Load())
	}
	before := kdfs.Load()
	var te *ThrottledError
	if _, err := s2.Authenticate(context.Background(), "alice", []byte("correct horse battery")); !errors.As(err, &te) {
		t.Fatalf("the right passphrase right after the burst: %v, want throttled", err)
	}
	if kdfs.Load() != before {
		t.Fatal("a throttled attempt ran the KDF")
	}
}

// A check whose caller went away before a slot freed never runs its KDF.
func TestAbandonedCheckRunsNoKDF(t *testing.T) {
	s, c := newTestService(t)
	var kdfs atomic.Int32
	s2 := New(s.DB(), Options{KDF: testKDF, Now: c.Now, KDFStarted: func() { kdfs.Add(1) }})
	s2.kdf <- struct{}{}
	s2.kdf <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s2.Authenticate(ctx, "alice", []byte("correct horse battery"))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	<-s2.kdf
	<-s2.kdf
	if kdfs.Load() != 0 {
		t.Fatalf("%d KDFs ran for an abandoned check", kdfs.Load())
	}
}
