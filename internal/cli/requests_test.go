package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/quorum"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
)

// TestRequestsAndFleetCommands: a guest's first boot waits; the officer
// lists it, a viewer may not approve it, the approver approves it from the
// command line, the guest collects, and `keyholder fleet` shows it verified.
func TestRequestsAndFleetCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var l cliLog
	pass := secretFile(t, dir, "pass", "officer passphrase one")
	viewerPass := secretFile(t, dir, "vpass", "viewer passphrase two")
	l.run(t, 0, "init", "--data", dir, "--officer", "alice", "--passphrase-file", pass)

	env := &cliEnv{cfg: testConfig, dataDir: dir}
	db, err := openStore(ctx, env, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := custody.New(db, testConfig.Custody)
	if _, err := cust.Unlock(ctx, "alice", []byte("officer passphrase one")); err != nil {
		t.Fatal(err)
	}
	if _, err := cust.AddOfficer(ctx, "alice", "victor", custody.RoleViewer, []byte("viewer passphrase two")); err != nil {
		t.Fatal(err)
	}
	db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_cli', 'cli', '2026-01-01T00:00:00.000000000Z')`)
	if _, err := attest.NewReferences(db).Put(ctx, "img_cli", &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "officer:alice", ""); err != nil {
		t.Fatal(err)
	}
	vol, _, secret, err := cust.CreateVolume(ctx, "officer:alice", "img_cli", "cli-data")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	eng, err := releaseEngine(ctx, nil, db, cust, true)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := agentsim.NewGuest(attest.Turin, "cli-chip")
	ch, _ := eng.Challenge()
	_, pub, _ := wire.NewKeyPair()
	req := &wire.ReleaseRequest{Version: wire.Version, VMID: "vm-cli", VolumeID: vol, Purpose: wire.PurposeBoot, Nonce: ch.Nonce, HPKEPublicKey: pub}
	rd, _ := wire.Transcript(req.Binding(nil))
	ev, err := g.Evidence(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Evidence = ev
	rel, err := eng.Release(ctx, req)
	if err != nil || rel.Status != wire.StatusPending {
		t.Fatalf("first boot: %+v %v", rel, err)
	}

	out := l.run(t, 0, "requests", "list", "--data", dir, "--json")
	var listing requestsListing
	err = json.Unmarshal([]byte(out), &listing)
	rs := listing.ReleaseRequests
	if err != nil || len(rs) != 1 || rs[0].ID != rel.RequestID || rs[0].Class != "first_boot" || len(listing.AdminActions) != 0 {
		t.Fatalf("requests list: %s %v", out, err)
	}
	if out := l.run(t, 0, "requests", "list", "--data", dir); !strings.Contains(out, rel.RequestID) || !strings.Contains(out, "SIMULATED") {
		t.Fatalf("requests list (table): %s", out)
	}
	if out := l.run(t, 1, "requests", "approve", rel.RequestID, "--data", dir, "--officer", "victor", "--passphrase-file", viewerPass); !strings.Contains(out, "viewer") {
		t.Fatalf("viewer approve: %s", out)
	}
	l.run(t, 1, "requests", "approve", rel.RequestID, "--data", dir, "--officer", "alice", "--passphrase-file", viewerPass)
	l.run(t, 2, "requests", "approve", "--data", dir)
	if out := l.run(t, 0, "requests", "approve", rel.RequestID, "--note", "first boot of cli", "--data", dir, "--officer", "alice", "--passphrase-file", pass); !strings.Contains(out, "Approved") {
		t.Fatalf("approve: %s", out)
	}
	got, err := eng.Poll(ctx, rel.RequestID)
	if err != nil || got.Status != wire.StatusReleased {
		t.Fatalf("collect: %+v %v", got, err)
	}
	// A collected request cannot be denied any more.
	l.run(t, 1, "requests", "deny", rel.RequestID, "--note", "too late", "--data", dir, "--officer", "alice", "--passphrase-file", pass)
	out = l.run(t, 0, "fleet", "--data", dir, "--json")
	var gs []fleet.Guest
	if err := json.Unmarshal([]byte(out), &gs); err != nil || len(gs) != 1 || gs[0].Status != fleet.Verified || gs[0].Product != "Turin" {
		t.Fatalf("fleet: %s %v", out, err)
	}
	if out := l.run(t, 0, "fleet", "--data", dir); !strings.Contains(out, "vm-cli") || !strings.Contains(out, "verified SIMULATED") {
		t.Fatalf("fleet (table): %s", out)
	}
	l.run(t, 2, "fleet", "--data", dir, "--status", "bogus")
}

// TestRequestsDecideAdminActions: an admin action waits beside release
// requests; `requests list` shows it with its quorum progress, the admin
// who asked cannot approve it again, an approver cannot decide it, a wrong
// --hash is refused, and a second admin's approval carries it out. A
// denial is final.
func TestRequestsDecideAdminActions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var l cliLog
	alicePass := secretFile(t, dir, "apass", "officer passphrase one")
	bobPass := secretFile(t, dir, "bpass", "bob's passphrase two")
	carolPass := secretFile(t, dir, "cpass", "carol's passphrase three")
	l.run(t, 0, "init", "--data", dir, "--officer", "alice", "--passphrase-file", alicePass)

	env := &cliEnv{cfg: testConfig, dataDir: dir}
	db, err := openStore(ctx, env, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := custody.New(db, testConfig.Custody)
	alice, err := cust.Unlock(ctx, "alice", []byte("officer passphrase one"))
	if err != nil {
		t.Fatal(err)
	}
	q := quorum.New(quorum.Config{DB: db, Custody: cust})
	by := quorum.Actor{Officer: alice, AuthenticatedAt: time.Now()}
	// Alone, alice adds bob as admin at once; from then on two are needed.
	if a, err := q.AddOfficer(ctx, by, "bob", custody.RoleAdmin, []byte("bob's passphrase two")); err != nil || a.Status != quorum.StatusDone {
		t.Fatalf("add bob: %+v %v", a, err)
	}
	if a, err := q.AddOfficer(ctx, by, "carol", custody.RoleApprover, []byte("carol's passphrase three")); err != nil || a.Status != quorum.StatusPending {
		t.Fatalf("add carol: %+v %v", a, err)
	}
	a, err := q.SetRole(ctx, by, "bob", custody.RoleViewer)
	if err != nil || a.Status != quorum.StatusPending {
		t.Fatalf("demote bob: %+v %v", a, err)
	}
	pending, err := quorum.List(ctx, db, quorum.StatusPending)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending: %+v %v", pending, err)
	}
	addCarol := pending[1]
	if addCarol.Kind != quorum.KindOfficerAdd {
		addCarol = pending[0]
	}

	out := l.run(t, 0, "requests", "list", "--data", dir, "--json")
	var listing requestsListing
	if err := json.Unmarshal([]byte(out), &listing); err != nil || len(listing.AdminActions) != 2 || len(listing.ReleaseRequests) != 0 {
		t.Fatalf("list --json: %s %v", out, err)
	}
	if strings.Contains(out, "wrapped") || strings.Contains(out, "salt") {
		t.Fatalf("the new officer's envelope is listed: %s", out)
	}
	if out := l.run(t, 0, "requests", "list", "--data", dir); !strings.Contains(out, addCarol.ID) || !strings.Contains(out, "1/2") || !strings.Contains(out, "add officer carol as approver") {
		t.Fatalf("list (table): %s", out)
	}
	if out := l.run(t, 1, "requests", "approve", addCarol.ID, "--data", dir, "--officer", "alice", "--passphrase-file", alicePass); !strings.Contains(out, "approved the action already") {
		t.Fatalf("alice approves twice: %s", out)
	}
	if out := l.run(t, 1, "requests", "approve", addCarol.ID, "--data", dir, "--officer", "bob", "--passphrase-file", bobPass, "--hash", a.Hash); !strings.Contains(out, "not the ones approved") {
		t.Fatalf("wrong hash: %s", out)
	}
	if _, err := custody.LookupOfficer(ctx, db, "carol"); err == nil {
		t.Fatal("carol added before the second admin approved")
	}
	if out := l.run(t, 0, "requests", "approve", addCarol.ID, "--data", dir, "--officer", "bob", "--passphrase-file", bobPass, "--hash", addCarol.Hash); !strings.Contains(out, "Done: add officer carol") {
		t.Fatalf("bob approves: %s", out)
	}
	if o, err := custody.LookupOfficer(ctx, db, "carol"); err != nil || o.Role != custody.RoleApprover {
		t.Fatalf("carol after the quorum: %+v %v", o, err)
	}
	// An approver does not decide admin actions.
	if out := l.run(t, 1, "requests", "deny", a.ID, "--data", dir, "--officer", "carol", "--passphrase-file", carolPass); !strings.Contains(out, "only admins") {
		t.Fatalf("approver denies: %s", out)
	}
	if out := l.run(t, 0, "requests", "deny", a.ID, "--note", "keep bob", "--data", dir, "--officer", "bob", "--passphrase-file", bobPass); !strings.Contains(out, "denied") {
		t.Fatalf("bob denies: %s", out)
	}
	l.run(t, 1, "requests", "approve", a.ID, "--data", dir, "--officer", "alice", "--passphrase-file", alicePass)
	if o, _ := custody.LookupOfficer(ctx, db, "bob"); o.Role != custody.RoleAdmin {
		t.Fatalf("denied demotion took effect: %+v", o)
	}
	out = l.run(t, 0, "requests", "list", "--status", "all", "--data", dir, "--json")
	listing = requestsListing{}
	if err := json.Unmarshal([]byte(out), &listing); err != nil || len(listing.AdminActions) != 3 {
		t.Fatalf("list all: %s %v", out, err)
	}
}
