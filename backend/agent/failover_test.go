package agent_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/luks2"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

// failoverVolume registers an image with reference values and a volume on
// a's database and returns the volume, its secret and a simulated guest.
func failoverVolume(t *testing.T, a *console) (string, []byte, *agentsim.Guest) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_web', 'web', ?)`, store.Time(time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(a.db).Put(ctx, "img_web", &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "officer:alice", "e2e"); err != nil {
		t.Fatal(err)
	}
	vol, _, secret, err := a.cust.CreateVolume(ctx, "officer:alice", "img_web", "web-data")
	if err != nil {
		t.Fatal(err)
	}
	g, err := agentsim.NewGuest(attest.Genoa, "chip-a")
	if err != nil {
		t.Fatal(err)
	}
	return vol, secret, g
}

// deadURL is an https URL on loopback where nothing listens any more.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "https://" + ln.Addr().String()
	ln.Close()
	return u
}

// TestFailover: the token names two consoles on one database; the first is
// down, dies after handing out the challenge, or presents a key that is not
// the pinned one. Each time the guest still gets its key, from the second.
func TestFailover(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := startConsole(t, dir, true) // the console that answers
	defer b.stop()
	vol, secret, g := failoverVolume(t, b)

	// A replica on the same database that dies when asked for a release,
	// after it handed out a challenge.
	var challenges, releases atomic.Int32
	dying := startReplicaWrapped(t, b, func(c *console, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v1/challenge":
				challenges.Add(1)
			case "/v1/release":
				releases.Add(1)
				go c.srv.Close()
				panic(http.ErrAbortHandler)
			}
			h.ServeHTTP(w, r)
		})
	})
	defer dying.stop()
	// Another console with its own TLS identity: the token's pin for it is
	// the first console's, so it must be refused as not trusted.
	stranger := startConsole(t, t.TempDir(), true)
	defer stranger.stop()
	if stranger.id.Pin == b.id.Pin {
		t.Fatal("the stranger shares the console's key")
	}

	cases := []struct {
		name  string
		first luks2.Console
	}{
		{"first down", luks2.Console{URL: deadURL(t), SPKIPin: b.id.Pin}},
		{"first dies after the challenge", luks2.Console{URL: dying.url, SPKIPin: b.id.Pin}},
		{"first has a wrong pin", luks2.Console{URL: stranger.url, SPKIPin: b.id.Pin}},
	}
	for i, c := range cases {
		pool, err := agent.NewPool([]luks2.Console{c.first, {URL: b.url, SPKIPin: b.id.Pin}})
		if err != nil {
			t.Fatal(err)
		}
		var retried []error
		req := agent.Request{VMID: "vm-web-1", VolumeID: vol, PollEvery: time.Millisecond, Waiting: b.approveAll(t),
			Retrying: func(err error) { retried = append(retried, err) }}
		if i > 0 {
			req = noApproveFor(t, req)
		}
		g.NewLaunch()
		res, err := pool.Obtain(ctx, g, req)
		if err != nil || string(res.Secret) != string(secret) {
			t.Fatalf("%s: %+v %v", c.name, res, err)
		}
		if len(retried) != 0 {
			t.Errorf("%s: waited although the second console answered: %v", c.name, retried)
		}
	}
	if challenges.Load() != 1 || releases.Load() != 1 {
		t.Errorf("the dying replica saw %d challenges and %d releases; want 1 and 1", challenges.Load(), releases.Load())
	}

	// Only consoles with wrong pins: refused at once, no waiting.
	pool, _ := agent.NewPool([]luks2.Console{{URL: stranger.url, SPKIPin: b.id.Pin}})
	g.NewLaunch()
	if _, err := pool.Obtain(ctx, g, agent.Request{VMID: "vm-web-1", VolumeID: vol, Backoff: agent.Backoff{
		Sleep: func(context.Context, time.Duration) error { t.Error("slept after a pin mismatch"); return nil }}}); !errors.Is(err, wire.ErrPinMismatch) {
		t.Errorf("only a wrong pin: %v", err)
	}
	// A refusal at the first console is final: the second shares its
	// database and would refuse too.
	pool, _ = agent.NewPool([]luks2.Console{{URL: b.url, SPKIPin: b.id.Pin}, {URL: deadURL(t), SPKIPin: b.id.Pin}})
	if _, err := pool.Obtain(ctx, g, agent.Request{VMID: "vm-web-1", VolumeID: "vol_nonexistent"}); agent.Code(err) == "" {
		t.Errorf("unknown volume: want a refusal, got %v", err)
	}
}

// TestFailoverPendingAtDeadConsole: the request waits for an officer at the
// first console, which then dies; the agent polls the second (same
// database) and gets the key once the officer approves there.
func TestFailoverPendingAtDeadConsole(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := startConsole(t, dir, true)
	defer b.stop()
	vol, secret, g := failoverVolume(t, b)
	a := startReplica(t, b)
	defer a.stop()
	pool, err := agent.NewPool([]luks2.Console{{URL: a.url, SPKIPin: a.id.Pin}, {URL: b.url, SPKIPin: b.id.Pin}})
	if err != nil {
		t.Fatal(err)
	}
	approve := b.approveAll(t)
	waits := 0
	res, err := pool.Obtain(ctx, g, agent.Request{VMID: "vm-web-1", VolumeID: vol, PollEvery: time.Millisecond,
		Waiting: func(rel *wire.Release) {
			waits++
			switch waits {
			case 1:
				a.srv.Close() // the console that took the request dies
			case 3:
				approve(rel)
			}
		}})
	if err != nil || string(res.Secret) != string(secret) {
		t.Fatalf("after the first console died while pending: %+v %v", res, err)
	}
}

// TestBackoffBounded: with every console down, the agent waits between
// rounds with doubling, jittered, capped steps, gives up at MaxWait, and
// stops as soon as its context ends. The clock and sleep are injected.
func TestBackoffBounded(t *testing.T) {
	ctx := context.Background()
	g, err := agentsim.NewGuest(attest.Genoa, "chip-a")
	if err != nil {
		t.Fatal(err)
	}
	pin := strings.Repeat("ab", 32)
	pool, err := agent.NewPool([]luks2.Console{{URL: deadURL(t), SPKIPin: pin}, {URL: deadURL(t), SPKIPin: pin}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	var slept []time.Duration
	var jitterCalls int
	bo := agent.Backoff{Base: time.Second, Max: 8 * time.Second,
		Now:   func() time.Time { return now },
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); now = now.Add(d); return nil },
		Jitter: func(d time.Duration) time.Duration {
			jitterCalls++
			if jitterCalls%2 == 0 {
				return d // the longest wait
			}
			return 0 // the shortest
		}}
	retries := 0
	_, err = pool.Obtain(ctx, g, agent.Request{VMID: "vm-1", VolumeID: "vol_1", MaxWait: time.Minute, Backoff: bo,
		Retrying: func(error) { retries++ }})
	var oe *net.OpError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "console https://") {
		t.Fatalf("all consoles down: want the last network error naming its console, got %v", err)
	}
	want := []time.Duration{500 * time.Millisecond, 2 * time.Second, 2 * time.Second, 8 * time.Second}
	for i := 4; i < len(slept); i++ {
		want = append(want, []time.Duration{4 * time.Second, 8 * time.Second}[i%2])
	}
	var total time.Duration
	for i, d := range slept {
		if d != want[i] {
			t.Errorf("wait %d: %s, want %s (all: %v)", i, d, want[i], slept)
		}
		total += d
	}
	if total > time.Minute || total < time.Minute-8*time.Second {
		t.Errorf("waited %s in all; want just under the one minute MaxWait (%v)", total, slept)
	}
	if retries != len(slept) {
		t.Errorf("%d Retrying calls for %d waits", retries, len(slept))
	}

	// Cancelled while waiting: it ends with the context's error, at once.
	cctx, cancel := context.WithCancel(ctx)
	bo.Sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	if _, err := pool.Obtain(cctx, g, agent.Request{VMID: "vm-1", VolumeID: "vol_1", Backoff: bo}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	// The default jitter stays within [step/2, step] and the step within Max.
	def := agent.Backoff{Base: time.Second, Max: 8 * time.Second}
	for round := 0; round < 100; round++ {
		step := min(time.Second<<min(round, 10), 8*time.Second)
		if d := def.Delay(round); d < step/2 || d > step {
			t.Fatalf("round %d: delay %s outside [%s, %s]", round, d, step/2, step)
		}
	}
}
