package release

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

// secondConsole opens another console process on e's database: its own
// store handle, its own key service (unlocked by the same officer) and its
// own engine, as a replica would.
func (e *testEnv) secondConsole() *Service {
	e.t.Helper()
	db, err := store.Open(e.ctx, e.path, store.Options{Now: e.clk.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	cust := custody.New(db, custody.Options{KDF: testKDF, Now: e.clk.Now})
	if _, err := cust.Unlock(e.ctx, "alice", []byte("correct horse battery")); err != nil {
		e.t.Fatal(err)
	}
	svc, err := New(Config{DB: db, Verifier: fakeVerifier{}, Secrets: cust, Now: e.clk.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

func (e *testEnv) consumed() int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM consumed_challenges`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestChallengesAcrossConsoles(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	b := e.secondConsole()
	g := guest{vm: "vm-a", vol: e.volume("a"), chip: 1, meas: 1, launch: 1}
	e.released(g) // first boot approved: the next boot is routine
	used := e.consumed()

	// Issued by A, used at B: released.
	g.launch = 2
	a := e.request(g, wire.PurposeBoot, 0)
	rel, err := b.Release(ctx, a.req)
	e.wantReleased(a, rel, err, 1)
	// Used once: refused by both, the one that accepted it and the other.
	for name, svc := range map[string]*Service{"A": e.svc, "B": b} {
		if _, err := svc.Release(ctx, a.req); code(err) != wire.CodeNonceUnknown {
			t.Errorf("replay at %s: %v", name, err)
		}
	}
	// Used at A after A issued it (no shortcut through B's memory): B refuses it.
	g.launch = 3
	a = e.request(g, wire.PurposeBoot, 0)
	rel, err = e.svc.Release(ctx, a.req)
	e.wantReleased(a, rel, err, 1)
	if _, err := b.Release(ctx, a.req); code(err) != wire.CodeNonceUnknown {
		t.Errorf("replay at B of a nonce used at A: %v", err)
	}
	// A refusal uses the nonce up too: the same evidence cannot be retried.
	bad := e.request(guest{vm: "vm-a", vol: g.vol, chip: 1, meas: 1, launch: 4, debug: true}, wire.PurposeBoot, 0)
	if _, err := b.Release(ctx, bad.req); code(err) != wire.CodePolicyDebug {
		t.Fatalf("debug launch: %v", err)
	}
	if _, err := e.svc.Release(ctx, bad.req); code(err) != wire.CodeNonceUnknown {
		t.Errorf("retry of a refused request at A: %v", err)
	}
	if got := e.consumed(); got != used+3 {
		t.Errorf("%d used challenges recorded, want %d", got, used+3)
	}

	// Forged (bad MAC) and expired nonces are refused by both, and cost no
	// storage.
	g.launch = 5
	forged := e.request(g, wire.PurposeBoot, 0)
	forged.req.Nonce[len(forged.req.Nonce)-1] ^= 1
	rd, _ := wire.Transcript(forged.req.Binding(nil))
	forged.req.Evidence.Report = g.report(rd) // genuine evidence over the forged nonce
	g.launch = 6
	late := e.request(g, wire.PurposeBoot, 0)
	e.clk.Advance(61 * time.Second)
	before := e.consumed()
	for name, svc := range map[string]*Service{"A": e.svc, "B": b} {
		if _, err := svc.Release(ctx, forged.req); code(err) != wire.CodeNonceUnknown {
			t.Errorf("forged nonce at %s: %v", name, err)
		}
		if _, err := svc.Release(ctx, late.req); code(err) != wire.CodeNonceUnknown {
			t.Errorf("expired nonce at %s: %v", name, err)
		}
	}
	if got := e.consumed(); got != before {
		t.Errorf("refused nonces were recorded: %d rows, want %d", got, before)
	}

	// Storage grows with successful requests, not with issued challenges.
	before = e.consumed()
	for i := 0; i < 2000; i++ {
		if _, err := b.Challenge(); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.consumed(); got != before {
		t.Fatalf("issuing challenges stored %d rows", got-before)
	}
	// Expired records are swept; a nonce they held is still refused (its
	// expiry is in the MAC'ed nonce itself).
	n, err := SweepChallenges(ctx, e.db, e.clk.Now())
	if err != nil || int(n) != before || e.consumed() != 0 {
		t.Fatalf("sweep: %d %v, %d left", n, err, e.consumed())
	}
	if _, err := b.Release(ctx, a.req); code(err) != wire.CodeNonceUnknown {
		t.Errorf("swept, expired nonce accepted: %v", err)
	}

	// A locked console neither issues nor accepts challenges, and says it
	// is locked (the agent retries).
	e.cust.Lock()
	if _, err := e.svc.Challenge(); code(err) != wire.CodeUnavailable {
		t.Errorf("challenge while locked: %v", err)
	}
	g.launch = 7
	saved := e.svc
	e.svc = b // B, unlocked, issues the challenge
	k := e.request(g, wire.PurposeBoot, 0)
	e.svc = saved
	if _, err := e.svc.Release(ctx, k.req); code(err) != wire.CodeUnavailable {
		t.Errorf("release at a locked console: %v", err)
	}
}

// BenchmarkChallengeCheck: the stateless check of one challenge under the
// key service's derived key (what every release and heartbeat pays, and
// every junk request with a well-formed nonce).
func BenchmarkChallengeCheck(b *testing.B) {
	e := newEnv(b)
	c := NewChallenges(e.cust, time.Hour, e.clk.Now)
	n, _, err := c.Issue()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Check(n); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApprovalDeliveredOnceAcrossConsoles: two consoles on one database
// (replicas) answer many concurrent polls for the same approved request;
// exactly one poll receives the secret, on either database.
func TestApprovalDeliveredOnceAcrossConsoles(t *testing.T) {
	e := newEnv(t)
	b := e.secondConsole()
	for round := 0; round < 3; round++ {
		_, id := e.approved(guest{vm: fmt.Sprintf("vm-once-%d", round), vol: e.volume(fmt.Sprintf("once-%d", round)), chip: 1, meas: 1, launch: byte(100 + round)})
		var wg sync.WaitGroup
		var released atomic.Int32
		for i := 0; i < 16; i++ {
			svc := e.svc
			if i%2 == 1 {
				svc = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rel, err := svc.Poll(e.ctx, id)
				if err == nil && rel.Status == wire.StatusReleased {
					released.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := released.Load(); n != 1 {
			t.Fatalf("round %d: the approved secret was delivered %d times", round, n)
		}
	}
}

// TestReplicasDecideTogether: two consoles on one database decide boots of
// many guests at once, some guests asking both consoles at the same time
// (one volume, one VM, two challenges). On PostgreSQL their group commits
// run side by side under per-key locks and append their audit entries at
// their ends; every boot is released, every decision is audited exactly
// once, and the audit chain is one unbroken chain.
func TestReplicasDecideTogether(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	b := e.secondConsole()
	const guests = 24
	gs := make([]guest, guests)
	for i := range gs {
		gs[i] = guest{vm: fmt.Sprintf("vm-together-%d", i), vol: e.volume(fmt.Sprintf("together-%d", i)), chip: 1, meas: 1, launch: byte(10 + i)}
		e.released(gs[i]) // first boot approved: the next boots are routine
	}
	before, err := audit.List(ctx, e.db, audit.Query{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	type try struct {
		a   attempt
		svc *Service
	}
	var tries []try
	for i, g := range gs {
		tries = append(tries, try{e.request(g, wire.PurposeBoot, 0), []*Service{e.svc, b}[i%2]})
		if i%3 == 0 { // the same guest at the other console too
			tries = append(tries, try{e.request(g, wire.PurposeBoot, 0), []*Service{b, e.svc}[i%2]})
		}
	}
	rels := make([]*wire.Release, len(tries))
	errs := make([]error, len(tries))
	var wg sync.WaitGroup
	for i, tr := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rels[i], errs[i] = tr.svc.Release(ctx, tr.a.req)
		}()
	}
	wg.Wait()
	for i, tr := range tries {
		e.wantReleased(tr.a, rels[i], errs[i], 1)
	}
	pub, _, err := e.cust.AuditPublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, e.db, pub)
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	if want := int64(len(before) + len(tries)); rep.Entries != want {
		t.Fatalf("%d audit entries, want %d: one per decision", rep.Entries, want)
	}
	after, err := audit.List(ctx, e.db, audit.Query{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	released := map[string]int{}
	for _, en := range after[:len(after)-len(before)] {
		if en.Action == "release" && en.Decision == "released" {
			released[en.Subject]++
		}
	}
	for i, g := range gs {
		want := 1
		if i%3 == 0 {
			want = 2
		}
		if released[g.vol] != want {
			t.Fatalf("volume of %s: %d release entries, want %d", g.vm, released[g.vol], want)
		}
	}
}
