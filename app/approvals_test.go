package app

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
	"keyholder/internal/testclock"
)

// releaseConsole is the app services over a release engine with the real
// verifier trusting the simulated AMD root.
type releaseConsole struct {
	svcs *Services
	eng  *release.Service
	clk  *testclock.Clock
	hub  *Hub
	vol  string
	// alice is the admin's session.
	alice Caller
}

// newReleaseConsole builds the console; opts adjust the release engine's
// configuration.
func newReleaseConsole(t *testing.T, opts ...func(*release.Config)) *releaseConsole {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db := storetest.Open(t, store.Options{})
	c := testclock.New(time.Now().UTC())
	cust := custody.New(db, custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, Now: c.Now})
	v, err := attest.NewVerifier(ctx, attest.Options{TrustSimulatedRoot: true, SimulatedRoots: sim.Root().TrustedRoots(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := release.Config{DB: db, Secrets: cust, Now: c.Now,
		Verifier: release.AttestVerifier{Verifier: v, References: attest.NewReferences(db)}}
	for _, o := range opts {
		o(&cfg)
	}
	eng, err := release.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hub := NewHub()
	svcs := New(ctx, Config{Mode: "desktop", Now: c.Now, Custody: cust, Release: eng}, db, hub)
	svcs.ConnectRelease()
	alice := setupAs(t, svcs, "alice", "alice's passphrase")
	if _, err := db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_1', 'web', ?)`, store.Time(c.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(db).Put(ctx, "img_1", &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "officer:alice", ""); err != nil {
		t.Fatal(err)
	}
	vol, _, secret, err := cust.CreateVolume(ctx, "officer:alice", "img_1", "data")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	return &releaseConsole{svcs: svcs, eng: eng, clk: c, hub: hub, vol: vol, alice: alice}
}

func (rc *releaseConsole) newVolume(t *testing.T, imageID string) string {
	t.Helper()
	vol, _, secret, err := rc.svcs.Fleet.custody.CreateVolume(context.Background(), "officer:alice", imageID, "data-"+imageID)
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	return vol
}

func (rc *releaseConsole) ask(t *testing.T, g *agentsim.Guest, vm string) *wire.Release {
	t.Helper()
	ch, err := rc.eng.Challenge()
	if err != nil {
		t.Fatal(err)
	}
	_, pub, _ := wire.NewKeyPair()
	req := &wire.ReleaseRequest{Version: wire.Version, VMID: vm, VolumeID: rc.vol, Purpose: wire.PurposeBoot, Nonce: ch.Nonce, HPKEPublicKey: pub}
	rd, _ := wire.Transcript(req.Binding(nil))
	ev, err := g.Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Evidence = ev
	rel, err := rc.eng.Release(context.Background(), req)
	if err != nil {
		t.Fatalf("release: %v", err)
	}
	return rel
}

func TestApprovalsThroughTheApp(t *testing.T) {
	rc := newReleaseConsole(t)
	events, stop := rc.hub.Subscribe()
	defer stop()
	a := rc.svcs.Approvals
	g, _ := agentsim.NewGuest(attest.Genoa, "app-chip-1")

	rel := rc.ask(t, g, "vm-app")
	if rel.Status != wire.StatusPending || rel.Class != "first_boot" {
		t.Fatalf("first boot: %+v", rel)
	}
	pending, err := a.Pending(rc.alice)
	if err != nil || len(pending) != 1 || pending[0].ID != rel.RequestID {
		t.Fatalf("pending: %+v %v", pending, err)
	}
	// The UI got an approvals event with the request.
	sawApproval := false
	for len(events) > 0 {
		var ev struct {
			Name string          `json:"name"`
			Data json.RawMessage `json:"data"`
		}
		json.Unmarshal(<-events, &ev)
		sawApproval = sawApproval || ev.Name == EventApprovalsChanged
	}
	if !sawApproval {
		t.Error("no approvals:changed event for a new pending request")
	}
	if _, err := a.Approve(rc.alice, rel.RequestID, "first boot of the app VM"); err != nil {
		t.Fatal(err)
	}
	if got, err := rc.eng.Poll(context.Background(), rel.RequestID); err != nil || got.Status != wire.StatusReleased {
		t.Fatalf("collect: %+v %v", got, err)
	}

	// Migration: pending, approved through the app, completes.
	g.MoveTo(attest.Genoa, "app-chip-2")
	g.NewLaunch()
	rel = rc.ask(t, g, "vm-app")
	if rel.Class != "migration" {
		t.Fatalf("migration: %+v", rel)
	}
	r, err := a.Approve(rc.alice, rel.RequestID, "planned")
	if err != nil || r.Status != release.StatusApproved || r.Approvals[0].Officer != "alice" {
		t.Fatalf("approve migration: %+v %v", r, err)
	}
	if _, err := a.Approve(rc.alice, rel.RequestID, "again"); code(err) != CodeConflict {
		t.Fatalf("approve twice: %v", err)
	}
	if got, err := rc.eng.Poll(context.Background(), rel.RequestID); err != nil || got.Status != wire.StatusReleased {
		t.Fatalf("collect migration: %+v %v", got, err)
	}
	d, err := rc.svcs.Fleet.Guest(rc.alice, "vm-app")
	if err != nil || d.Status != fleet.Verified || len(d.History) < 4 || !d.Simulated {
		t.Fatalf("guest: %+v %v", d, err)
	}

	// Deny is final; an old authentication cannot approve.
	g.MoveTo(attest.Genoa, "app-chip-3")
	g.NewLaunch()
	rel = rc.ask(t, g, "vm-app")
	rc.clk.Advance(DefaultFreshAuth + time.Second)
	if _, err := a.Deny(rc.alice, rel.RequestID, "no"); code(err) != CodeReauth {
		t.Fatalf("deny with a stale authentication: %v", err)
	}
	if _, err := rc.svcs.Session.Unlock(rc.alice, "alice's passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deny(rc.alice, rel.RequestID, "unexpected host"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Approve(rc.alice, rel.RequestID, ""); code(err) != CodeConflict {
		t.Fatalf("approve after deny: %v", err)
	}

	// An image without reference values: its first boot waits with a
	// proposal; approving it records the proposal, so the next boot of that
	// launch is routine.
	if _, err := rc.svcs.Fleet.db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_new', 'fresh', ?)`, store.Time(rc.clk.Now())); err != nil {
		t.Fatal(err)
	}
	rc.vol = rc.newVolume(t, "img_new")
	h, _ := agentsim.NewGuest(attest.Milan, "app-chip-9")
	rel = rc.ask(t, h, "vm-fresh")
	if rel.Status != wire.StatusPending || rel.Class != "first_boot" {
		t.Fatalf("unreferenced first boot: %+v", rel)
	}
	req, _ := a.Get(rc.alice, rel.RequestID)
	var sum release.Summary
	json.Unmarshal(req.Summary, &sum)
	if len(sum.ProposedReference) == 0 {
		t.Fatalf("no proposed reference values in %s", req.Summary)
	}
	if _, err := attest.NewReferences(rc.svcs.Fleet.db).Latest(context.Background(), "img_new"); err == nil {
		t.Fatal("reference values recorded before approval")
	}
	if _, err := a.Approve(rc.alice, rel.RequestID, "new image"); err != nil {
		t.Fatal(err)
	}
	if got, err := rc.eng.Poll(context.Background(), rel.RequestID); err != nil || got.Status != wire.StatusReleased {
		t.Fatalf("collect: %+v %v", got, err)
	}
	if rv, err := attest.NewReferences(rc.svcs.Fleet.db).Latest(context.Background(), "img_new"); err != nil || rv.CreatedBy != "officer:alice" {
		t.Fatalf("reference values after approval: %+v %v", rv, err)
	}
	h.NewLaunch()
	if rel = rc.ask(t, h, "vm-fresh"); rel.Status != wire.StatusReleased || rel.Class != "routine_boot" {
		t.Fatalf("reboot after the approved first boot: %+v", rel)
	}

	// Revoke through the app.
	if err := rc.svcs.Fleet.Revoke(rc.alice, "vm-app", "compromised"); err != nil {
		t.Fatal(err)
	}
	if d, _ := rc.svcs.Fleet.Guest(rc.alice, "vm-app"); d.Status != fleet.Revoked {
		t.Fatalf("status after revoke: %s", d.Status)
	}
	if _, err := rc.svcs.Approvals.SetPolicy(rc.alice, "", &release.Policy{Actions: map[release.Class]release.Action{"nonsense": release.ActionRelease}}); code(err) != CodeInvalid {
		t.Fatalf("invalid policy: %v", err)
	}
}

// The engine is given the officer's real authentication time, not the
// time of the call: an engine that accepts a shorter age than the console
// refuses an approval from a session whose login is older than that
// (issue 12, item 5).
func TestEngineGetsTheRealAuthenticationTime(t *testing.T) {
	rc := newReleaseConsole(t, func(c *release.Config) { c.MaxAuthAge = time.Minute })
	a := rc.svcs.Approvals
	g, _ := agentsim.NewGuest(attest.Genoa, "authat-chip")
	rel := rc.ask(t, g, "vm-authat")
	rc.clk.Advance(2 * time.Minute) // still fresh for the console, not for the engine
	if _, err := a.Approve(rc.alice, rel.RequestID, "late"); code(err) != CodeReauth {
		t.Fatalf("approval two minutes after the login, engine's limit one: %v, want %s", err, CodeReauth)
	}
	if r, err := a.Get(rc.alice, rel.RequestID); err != nil || r.Status != release.StatusPending || len(r.Approvals) != 0 {
		t.Fatalf("after the refused approval: %+v %v", r, err)
	}
	if _, err := rc.svcs.Session.Unlock(rc.alice, "alice's passphrase"); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Approve(rc.alice, rel.RequestID, "fresh"); err != nil || r.Status != release.StatusApproved {
		t.Fatalf("approval right after re-authenticating: %+v %v", r, err)
	}
}

// TestResyncReloadsOfficersViews: when the release engine says events may
// have been lost (a replica's listener reconnected), every event stream
// sees a gap in the sequence, which the web console and the desktop's
// remote client both take as "reload every view".
func TestResyncReloadsOfficersViews(t *testing.T) {
	rc := newReleaseConsole(t)
	events, stop := rc.hub.Subscribe()
	defer stop()
	seq := func() uint64 {
		t.Helper()
		select {
		case b := <-events:
			var ev struct {
				Seq uint64 `json:"seq"`
			}
			json.Unmarshal(b, &ev)
			return ev.Seq
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
			return 0
		}
	}
	rc.hub.Emit(EventAuditAppended, nil)
	before := seq()
	rc.eng.Deliver(release.Event{Kind: release.EventResync})
	if after := seq(); after == before+1 {
		t.Fatalf("the resync's message follows seq %d without a gap: no view reloads", before)
	}
}
