package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/hsm"
	"keyholder/backend/hsm/hsmtest"
	"keyholder/backend/quorum"
	"keyholder/backend/store"
	"keyholder/internal/testclock"
)

// TestAutoUnsealThroughTheConsole, on a real SoftHSM2 token: in the
// console, one admin of two asks to set up auto-unseal with the token the
// console was started with; nothing changes, and the token is not opened,
// until a second admin approved and the first collects it (only they can);
// a viewer can do neither. Removal goes the same way. A console started
// without a token says so instead.
func TestAutoUnsealThroughTheConsole(t *testing.T) {
	module := hsmtest.Token(t, "kh-app", "3141-pin")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := testclock.New(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC))
	opened := 0
	desc := custody.UnsealInfo{Kind: "pkcs11", TokenLabel: "kh-app", KeyLabel: hsm.DefaultKeyLabel, Mechanism: hsm.Mechanism, Module: module}
	s := New(ctx, Config{Mode: "web", Now: c.Now, CustodyOptions: custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, Now: c.Now},
		AutoUnsealTokenInfo: func() (custody.UnsealInfo, error) { return desc, nil },
		AutoUnsealToken: func() (custody.KeyWrapper, custody.UnsealInfo, func(), error) {
			tok, err := hsm.Open(hsm.Config{Module: module, TokenLabel: "kh-app", PIN: []byte("3141-pin")}, true)
			if err != nil {
				return nil, custody.UnsealInfo{}, nil, err
			}
			opened++
			return tok, custody.UnsealInfo{Kind: "pkcs11", TokenLabel: tok.TokenLabel(), KeyLabel: tok.KeyLabel(), Mechanism: hsm.Mechanism, Module: module}, func() { tok.Close() }, nil
		}}, db, NewHub())
	alice := setupAs(t, s, "alice", "alice's passphrase")
	for _, o := range [][2]string{{"vic", "viewer"}, {"bob", "admin"}} {
		if out, err := s.Keys.AddOfficer(alice, o[0], o[1], o[0]+"'s passphrase"); err != nil || (o[0] == "bob" && !out.Done) {
			t.Fatalf("add %s: %+v %v", o[0], out, err)
		}
	}
	bob, vic := loginAs(t, s, "bob", "bob's passphrase"), loginAs(t, s, "vic", "vic's passphrase")
	on := func() bool {
		st, err := s.Keys.State()
		if err != nil {
			t.Fatal(err)
		}
		return st.AutoUnseal
	}

	if _, err := s.Keys.SetupAutoUnseal(vic); code(err) != CodeForbidden || opened != 0 {
		t.Fatalf("a viewer asked for auto-unseal: %v (token opened %d times)", err, opened)
	}
	out, err := s.Keys.SetupAutoUnseal(alice)
	if err != nil || out.Done || out.Action.Kind != quorum.KindUnsealSetup || on() {
		t.Fatalf("one admin: %+v %v (on %v)", out, err, on())
	}
	if _, err := s.Approvals.ApproveAction(vic, out.Action.ID, out.Action.Hash); code(err) != CodeForbidden {
		t.Fatalf("a viewer approved: %v", err)
	}
	if done, err := s.Approvals.ApproveAction(bob, out.Action.ID, out.Action.Hash); err != nil || done.Action.Status != quorum.StatusApproved || on() || opened != 0 {
		t.Fatalf("second admin: %+v %v (on %v, token opened %d times)", done, err, on(), opened)
	}
	if _, err := s.Keys.CollectAutoUnseal(bob, out.Action.ID); code(err) != CodeForbidden || on() || opened != 0 {
		t.Fatalf("collected by bob, who did not ask: %v (on %v, token opened %d times)", err, on(), opened)
	}
	// A console now started with another token than the approved one.
	desc.TokenLabel = "kh-other"
	if _, err := s.Keys.CollectAutoUnseal(alice, out.Action.ID); code(err) != CodeConflict || on() || opened != 0 {
		t.Fatalf("collected with another token: %v (on %v, token opened %d times)", err, on(), opened)
	}
	desc.TokenLabel = "kh-app"
	if got, err := s.Keys.CollectAutoUnseal(alice, out.Action.ID); err != nil || !got.Done || got.Action.Status != quorum.StatusDelivered || !on() {
		t.Fatalf("collected by alice: %+v %v (on %v)", got, err, on())
	}

	out, err = s.Keys.RemoveAutoUnseal(bob)
	if err != nil || out.Done || out.Action.Kind != quorum.KindUnsealRemove || !on() {
		t.Fatalf("removal by one admin: %+v %v", out, err)
	}
	if done, err := s.Approvals.ApproveAction(alice, out.Action.ID, out.Action.Hash); err != nil || !done.Done || on() {
		t.Fatalf("removal approved: %+v %v (on %v)", done, err, on())
	}
	if _, err := s.Keys.RemoveAutoUnseal(bob); code(err) != CodeConflict {
		t.Fatalf("removal with nothing set up: %v", err)
	}

	// A console started without a token.
	s.Keys.cfg.AutoUnsealToken, s.Keys.cfg.AutoUnsealTokenInfo = nil, nil
	if _, err := s.Keys.SetupAutoUnseal(alice); code(err) != CodeConflict {
		t.Fatalf("setup without a token: %v", err)
	}
}
