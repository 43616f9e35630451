package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/release/wire"
)

// TestRequestsListShowsFirstBootClaims: `keyholder requests list` shows
// competing claims of a volume's first boot and what approving one pins.
func TestRequestsListShowsFirstBootClaims(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var l cliLog
	pass := secretFile(t, dir, "pass", "officer passphrase one")
	l.run(t, 0, "init", "--data", dir, "--officer", "alice", "--passphrase-file", pass)
	db, err := openStore(ctx, &cliEnv{cfg: testConfig, dataDir: dir}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := custody.New(db, testConfig.Custody)
	if _, err := cust.Unlock(ctx, "alice", []byte("officer passphrase one")); err != nil {
		t.Fatal(err)
	}
	db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_new', 'new-service', '2026-01-01T00:00:00.000000000Z')`)
	vol, _, secret, err := cust.CreateVolume(ctx, "officer:alice", "img_new", "new-data")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	eng, err := releaseEngine(ctx, nil, db, cust, true)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, vm := range []string{"vm-real", "vm-stranger"} {
		g, _ := agentsim.NewGuest(attest.Genoa, vm+"-host")
		g.Measurement = bytes.Repeat([]byte{byte(i + 1)}, 48)
		ch, _ := eng.Challenge()
		_, pub, _ := wire.NewKeyPair()
		req := &wire.ReleaseRequest{Version: wire.Version, VMID: vm, VolumeID: vol, Purpose: wire.PurposeBoot, Nonce: ch.Nonce, HPKEPublicKey: pub}
		rd, _ := wire.Transcript(req.Binding(nil))
		if req.Evidence, err = g.Evidence(ctx, rd); err != nil {
			t.Fatal(err)
		}
		rel, err := eng.Release(ctx, req)
		if err != nil || rel.Status != wire.StatusPending {
			t.Fatalf("claim of %s: %+v %v", vm, rel, err)
		}
		ids = append(ids, rel.RequestID)
	}
	out := l.run(t, 0, "requests", "list", "--data", dir)
	for _, want := range []string{
		"COMPETES with " + ids[1],
		"COMPETES with " + ids[0],
		ids[0] + ": Approving this first boot pins measurement " + strings.Repeat("01", 48) + " as the reference values of image new-service (img_new)",
		"1 other launch(es) claim this volume's first boot",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("requests list lacks %q:\n%s", want, out)
		}
	}
}
