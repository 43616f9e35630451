package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
)

// TestRequestsAndFleetCommands: a guest's first boot waits; the officer
// lists it, a viewer may not approve it, the approver approves it from the
// command line, the guest collects, and `keyholder fleet` shows it verified.
func TestRequestsAndFleetCommands(t *testing.T) {
	useCheapKDF(t)
	ctx := context.Background()
	dir := t.TempDir()
	var l cliLog
	pass := secretFile(t, dir, "pass", "officer passphrase one")
	viewerPass := secretFile(t, dir, "vpass", "viewer passphrase two")
	l.run(t, 0, "init", "--data", dir, "--officer", "alice", "--passphrase-file", pass)

	env := &cliEnv{dataDir: dir}
	db, err := openStore(ctx, env, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := custody.New(db, custodyOptions)
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
	var rs []release.Request
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 || rs[0].ID != rel.RequestID || rs[0].Class != "first_boot" {
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
	l.run(t, 1, "requests", "deny", rel.RequestID, "--data", dir, "--officer", "alice", "--passphrase-file", pass)
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
