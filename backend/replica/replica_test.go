package replica

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	storetest.Stop()
	os.Exit(code)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestLeaseAndLiveness: two replicas on one database; one holds the job
// lease and renews it, the other gets it only after it lapsed; the list
// shows both, the silent one as gone after three intervals; Close gives
// the lease up at once.
func TestLeaseAndLiveness(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	loc := storetest.Location(t, dir)
	open := func() *store.DB {
		db, err := store.Open(ctx, loc, store.Options{Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dbA, dbB := open(), open()
	a, err := Register(ctx, dbA, "http://a/", "a:8443")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(ctx, dbB, "http://b/", "b:8443")
	if err != nil {
		t.Fatal(err)
	}
	lease := func(r *Replica) bool {
		t.Helper()
		ok, err := r.Lease(ctx, "job", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !lease(a) || lease(b) {
		t.Fatal("the first replica must get the lease and the second not")
	}
	clk.add(40 * time.Second)
	if !lease(a) || lease(b) {
		t.Fatal("a renewed lease stays with its holder")
	}
	clk.add(40 * time.Second) // a's renewal lasts until 100s
	if lease(b) {
		t.Fatal("the lease moved before it lapsed")
	}
	b.Heartbeat(ctx)
	clk.add(30 * time.Second)
	if !lease(b) {
		t.Fatal("a lapsed lease is not taken over")
	}
	if lease(a) {
		t.Fatal("the old holder still holds the lease")
	}
	clk.add(10 * time.Second)
	b.Heartbeat(ctx)
	list, err := List(ctx, dbA, a.ID())
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for _, i := range list {
		switch i.ID {
		case a.ID():
			if i.Alive || !i.Self {
				t.Errorf("a (silent for 110s): %+v", i)
			}
		case b.ID():
			if !i.Alive || i.Self {
				t.Errorf("b (heartbeat just now): %+v", i)
			}
		}
	}
	b.Close(ctx)
	if !lease(a) {
		t.Fatal("a closed replica's lease is not free")
	}
	if list, _ := List(ctx, dbA, ""); len(list) != 1 {
		t.Fatalf("after Close: %+v", list)
	}
}

// TestBridgeCarriesEvents: an event of one replica's release engine
// reaches the other replica's engine (PostgreSQL's LISTEN/NOTIFY), once,
// and is not echoed back to its origin.
func TestBridgeCarriesEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	engines, got := bridgedPair(t, ctx)
	engines[0].Deliver(release.Event{Kind: "local only"}) // not broadcast
	engines[0].EmitForTest(release.Event{Kind: "request", RequestID: "req_1"})
	select {
	case ev := <-got[1]:
		if ev.Kind != "request" || ev.RequestID != "req_1" {
			t.Fatalf("replica 1 got %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the event did not reach the other replica")
	}
	// Replica 0 saw its own two events once each, nothing echoed.
	for _, want := range []string{"local only", "request"} {
		if ev := <-got[0]; ev.Kind != want {
			t.Fatalf("replica 0 got %+v, want %s", ev, want)
		}
	}
	engines[1].EmitForTest(release.Event{Kind: "fleet", VMID: "vm-9"})
	if ev := <-got[0]; ev.Kind != "fleet" || ev.VMID != "vm-9" {
		t.Fatalf("replica 0 got %+v", ev)
	}
	select {
	case ev := <-got[1]:
		if ev.Kind != "fleet" {
			t.Fatalf("replica 1 got %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("replica 1 did not see its own event")
	}
	select {
	case ev := <-got[0]:
		t.Fatalf("an extra event reached replica 0: %+v", ev)
	case ev := <-got[1]:
		t.Fatalf("an extra event reached replica 1: %+v", ev)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestBridgeReconnectResyncs: notifications sent while a replica's
// listener is reconnecting are lost, so once it is back the replica's
// engine gets a "resync" event (officers' views reload, waiting guests
// re-read their requests) instead of silently missing a decision.
func TestBridgeReconnectResyncs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newBridged(t, ctx, storetest.NewDatabase(t, storetest.Server(t)))
	db, got, ready := r.db, r.got, r.ready
	r.bridge(ctx, r.eng, func() { ready <- struct{}{} })
	<-ready
	// The first connection lost nothing: no resync.
	select {
	case ev := <-got:
		t.Fatalf("an event before any reconnect: %+v", ev)
	default:
	}
	// Cut the listener's connection, as a database restart or a network
	// failure would.
	res, err := db.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d listener connections terminated, want 1", n)
	}
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("the listener did not reconnect")
	}
	select {
	case ev := <-got:
		if ev.Kind != release.EventResync {
			t.Fatalf("after the reconnect: %+v, want a resync", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no resync after the listener reconnected")
	}
}

// bridged is a replica on the database at loc with its own release engine,
// whose events arrive on got; ready is for the bridge's ready calls.
type bridged struct {
	*Replica
	eng   *release.Service
	got   chan release.Event
	ready chan struct{}
}

func newBridged(t *testing.T, ctx context.Context, loc string) *bridged {
	t.Helper()
	db, err := store.Open(ctx, loc, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng, err := release.New(release.Config{DB: db, Secrets: custody.New(db, custody.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan release.Event, 256)
	eng.OnEvent(func(ev release.Event) { got <- ev })
	r, err := Register(ctx, db, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return &bridged{Replica: r, eng: eng, got: got, ready: make(chan struct{}, 4)}
}

// TestDrainSendsTheQueueOnce: the events waiting behind the first go out
// together, in order, each once, at most max of them; the rest stay queued.
func TestDrainSendsTheQueueOnce(t *testing.T) {
	q := make(chan envelope, 16)
	a := envelope{From: "r", Kind: "fleet", VMID: "vm-1"}
	b := envelope{From: "r", Kind: "request", RequestID: "req_1"}
	c := envelope{From: "r", Kind: "fleet", VMID: "vm-2"}
	for _, e := range []envelope{b, a, b, c, a} {
		q <- e
	}
	got := drain(a, q, 3)
	want := []string{encode(a), encode(b), encode(c)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("drain = %v, want %v", got, want)
	}
	// c was the fourth taken; the last a stays for the next round.
	if len(q) != 1 {
		t.Fatalf("%d events left in the queue, want 1", len(q))
	}
	if got := drain(<-q, q, 3); len(got) != 1 || got[0] != encode(a) {
		t.Fatalf("second round = %v", got)
	}
}

// TestBridgeCarriesABurst: events emitted faster than they are sent (one
// notifying transaction for the queue) all reach the other replica, in
// order.
func TestBridgeCarriesABurst(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	engines, got := bridgedPair(t, ctx)
	const n = 100
	for i := range n {
		engines[0].EmitForTest(release.Event{Kind: "request", RequestID: fmt.Sprintf("req_%03d", i)})
	}
	for i := range n {
		select {
		case ev := <-got[1]:
			if want := fmt.Sprintf("req_%03d", i); ev.RequestID != want {
				t.Fatalf("replica 1 got %+v, want %s", ev, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("event %d did not reach the other replica", i)
		}
	}
}

// bridgedPair is two bridged replicas on one new database, both listening.
func bridgedPair(t *testing.T, ctx context.Context) ([]*release.Service, []chan release.Event) {
	t.Helper()
	loc := storetest.NewDatabase(t, storetest.Server(t))
	engines := make([]*release.Service, 2)
	got := make([]chan release.Event, 2)
	for i := range engines {
		r := newBridged(t, ctx, loc)
		engines[i], got[i] = r.eng, r.got
		r.bridge(ctx, r.eng, func() { r.ready <- struct{}{} })
		<-r.ready
	}
	return engines, got
}
