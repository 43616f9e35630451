package remote_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"keyholder/app/remote"
)

func TestBackoffIsCappedAndJittered(t *testing.T) {
	b := remote.Backoff{Base: 100 * time.Millisecond, Max: time.Second, Jitter: func(d time.Duration) time.Duration { return d }}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, w := range want {
		if got := b.Delay(i); got != w*time.Millisecond {
			t.Errorf("attempt %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	// Jitter draws between half the step and the step.
	b.Jitter = func(time.Duration) time.Duration { return 0 }
	if got := b.Delay(2); got != 200*time.Millisecond {
		t.Errorf("least jittered third wait: %v, want 200ms", got)
	}
	b.Jitter = nil
	for i := range 200 {
		if d := b.Delay(i % 8); d < b.Base/2 || d > b.Max {
			t.Fatalf("random wait %v outside [%v, %v]", d, b.Base/2, b.Max)
		}
	}
	if d := b.Delay(1 << 20); d > b.Max {
		t.Fatalf("huge attempt count: %v", d)
	}
}

// sleeper is the watcher's Sleep under the test's control: each wait is
// reported and returns when the test says so.
type sleeper struct {
	waits chan time.Duration
	go_   chan struct{}
}

func newSleeper() *sleeper {
	return &sleeper{waits: make(chan time.Duration, 1), go_: make(chan struct{})}
}

func (s *sleeper) sleep(ctx context.Context, d time.Duration, _ <-chan struct{}) error {
	s.waits <- d
	select {
	case <-s.go_:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next waits for the watcher's next wait, checks its length and lets it go.
func (s *sleeper) next(t *testing.T, want time.Duration) {
	t.Helper()
	select {
	case d := <-s.waits:
		t.Logf("wait %v", d)
		if d != want {
			t.Fatalf("the watcher waits %v, want %v", d, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the watcher did not wait (want %v)", want)
	}
	s.go_ <- struct{}{}
}

// The watcher follows the session's event stream, notices when the console
// goes away, retries with a capped, growing wait, and comes back by itself
// with a resync when the console returns.
func TestWatcherReconnectsWithBackoff(t *testing.T) {
	c := newConsole(t)
	cl, err := remote.New(remote.Options{URL: c.url(), Pin: c.id.Pin})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := cl.Call(ctx, "", "Session", "Setup", json.RawMessage(`["alice","alice's long passphrase"]`))
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Token string }
	json.Unmarshal(out, &st)

	events := make(chan string, 64)
	states := make(chan remote.State, 64)
	w := remote.NewWatcher(cl, func(name string, data json.RawMessage) { events <- name + " " + string(data) }, func(s remote.State) { t.Logf("state %+v", s); states <- s })
	w.Backoff = remote.Backoff{Base: 100 * time.Millisecond, Max: 400 * time.Millisecond, Jitter: func(d time.Duration) time.Duration { return d }}
	sl := newSleeper()
	w.Sleep = sl.sleep
	w.SetToken(st.Token)
	go w.Run(ctx)

	waitState := func(ok func(remote.State) bool, what string) remote.State {
		t.Helper()
		for {
			select {
			case s := <-states:
				if ok(s) {
					return s
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no state: %s", what)
			}
		}
	}
	waitEvent := func(prefix string) {
		t.Helper()
		for {
			select {
			case e := <-events:
				if strings.HasPrefix(e, prefix) {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no event %q", prefix)
			}
		}
	}
	waitState(func(s remote.State) bool { return s.Connected && s.Streaming }, "streaming")
	waitEvent("resync")
	c.hub.Emit("approvals:changed", map[string]any{"id": "req_1", "status": "pending"})
	waitEvent(`approvals:changed {"id":"req_1","status":"pending"}`)

	c.kill()
	// The stream ended: one quick retry, then the console is down and the
	// waits grow up to the cap.
	waitState(func(s remote.State) bool { return s.Connected && !s.Streaming }, "stream ended")
	sl.next(t, 100*time.Millisecond)
	for i, want := range []time.Duration{100, 200, 400, 400} {
		s := waitState(func(s remote.State) bool { return !s.Connected }, "down")
		if s.Attempt != i+1 || s.RetryInMS != int64(want) || s.Error == "" || s.URL != c.url() {
			t.Fatalf("down state %+v, want attempt %d retrying in %dms", s, i+1, want)
		}
		if i == 3 {
			c.start()
		}
		sl.next(t, want*time.Millisecond)
	}
	waitState(func(s remote.State) bool { return s.Connected && s.Streaming && s.Attempt == 0 && s.Error == "" }, "back")
	waitEvent("resync")
	c.hub.Emit("fleet:changed", nil)
	waitEvent("fleet:changed null")
}

// Without a session (or with one the console no longer knows) the watcher
// does not hammer the console: it checks now and then whether it answers.
func TestWatcherWithoutSessionProbes(t *testing.T) {
	c := newConsole(t)
	cl, err := remote.New(remote.Options{URL: c.url(), Pin: c.id.Pin})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	states := make(chan remote.State, 16)
	w := remote.NewWatcher(cl, func(string, json.RawMessage) {}, func(s remote.State) { states <- s })
	if _, err := cl.Call(ctx, "", "Session", "Setup", json.RawMessage(`["alice","alice's long passphrase"]`)); err != nil {
		t.Fatal(err)
	}
	w.ProbeEvery = 7 * time.Second
	w.Backoff.Jitter = func(time.Duration) time.Duration { return 0 }
	sl := newSleeper()
	w.Sleep = sl.sleep
	w.SetToken("0000000000000000000000000000000000000000000000000000000000000000")
	go w.Run(ctx)
	sl.next(t, 7*time.Second) // the stream was refused: the console answers
	if s := w.State(); !s.Connected || s.Streaming {
		t.Fatalf("state %+v", s)
	}
	w.SetToken("")
	sl.next(t, 7*time.Second)
	c.kill()
	sl.next(t, remote.DefaultBackoffBase/2) // down: the first back-off step, least jittered
	if s := w.State(); s.Connected || s.Attempt != 1 {
		t.Fatalf("state after the console went away: %+v", s)
	}
}
