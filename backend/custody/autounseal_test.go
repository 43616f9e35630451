package custody

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"keyholder/backend/hsm"
	"keyholder/backend/hsm/hsmtest"
)

// TestAutoUnseal runs against a real SoftHSM2 token: set up by an admin
// (not a viewer), a new service over the same database (a restarted
// console) unlocks through the token without any officer and serves the
// volume's secret; another key in the token leaves it locked with a
// reason; after removal nothing unlocks it but an officer. The token never
// gets the master key in plaintext onto the database.
func TestAutoUnseal(t *testing.T) {
	ctx := context.Background()
	module := hsmtest.Token(t, "kh-unseal", "5678-pin")
	cfg := hsm.Config{Module: module, TokenLabel: "kh-unseal", PIN: []byte("5678-pin")}
	dir := t.TempDir()
	db := openTestDB(t, dir)
	s := New(db, Options{KDF: testKDF})
	if _, err := s.Init(ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddOfficer(ctx, "alice", "victor", RoleViewer, []byte("viewer passphrase")); err != nil {
		t.Fatal(err)
	}
	vol, _, secret, err := s.CreateVolume(ctx, "officer:alice", "", "data")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	info := UnsealInfo{Kind: "pkcs11", TokenLabel: tok.TokenLabel(), KeyLabel: tok.KeyLabel(), Mechanism: hsm.Mechanism}
	if err := s.SetupAutoUnseal(ctx, "victor", tok, info); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a viewer set up auto-unseal: %v", err)
	}
	if err := s.SetupAutoUnseal(ctx, "alice", tok, info); err != nil {
		t.Fatal(err)
	}
	tok.Close()
	s.mu.RLock()
	master := append([]byte(nil), s.master...)
	s.mu.RUnlock()
	var raw []byte
	db.QueryRow(`SELECT wrapped FROM wrapped_keys WHERE name = 'auto-unseal'`).Scan(&raw)
	if len(raw) == 0 || bytes.Contains(raw, master) {
		t.Fatal("the auto-unseal row is missing or holds the master key in plaintext")
	}
	s.Close(ctx)

	restart := func() *Service { return New(openTestDB(t, dir), Options{KDF: testKDF}) }

	// A restarted console unlocks itself through the token.
	s2 := restart()
	if s2.Unlocked() {
		t.Fatal("unlocked before auto-unseal")
	}
	tok, err = hsm.Open(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.AutoUnseal(ctx, tok); err != nil {
		t.Fatal(err)
	}
	tok.Close()
	if got, err := s2.ReleaseSecret(ctx, vol, 1); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("release after auto-unseal: %v", err)
	}
	if st, _ := s2.State(ctx); !st.Unlocked || !st.AutoUnseal || st.LockedReason != "" {
		t.Fatalf("state after auto-unseal: %+v", st)
	}
	s2.Close(ctx)

	// Another key of the token does not open it: locked, with a reason.
	s3 := restart()
	other, err := hsm.Open(hsm.Config{Module: module, TokenLabel: "kh-unseal", PIN: []byte("5678-pin"), KeyLabel: "other"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.AutoUnseal(ctx, other); err == nil || s3.Unlocked() {
		t.Fatal("another key unsealed the console")
	}
	other.Close()
	if st, _ := s3.State(ctx); st.Unlocked || !strings.Contains(st.LockedReason, "does not open the stored master key") {
		t.Fatalf("state after a failed auto-unseal: %+v", st)
	}

	// Removed (an admin's action, allowed while locked): the next start
	// stays locked even with the right token.
	if err := s3.RemoveAutoUnseal(ctx, "victor"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a viewer removed auto-unseal: %v", err)
	}
	if err := s3.RemoveAutoUnseal(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s3.RemoveAutoUnseal(ctx, "alice"); !errors.Is(err, ErrNoAutoUnseal) {
		t.Fatalf("second removal: %v", err)
	}
	s4 := restart()
	tok, err = hsm.Open(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if err := s4.AutoUnseal(ctx, tok); !errors.Is(err, ErrNoAutoUnseal) || s4.Unlocked() {
		t.Fatalf("auto-unseal after removal: %v", err)
	}
	if st, _ := s4.State(ctx); st.AutoUnseal || st.Unlocked {
		t.Fatalf("state after removal: %+v", st)
	}
}

// TestAutoUnsealDirectChangeNeedsSoleAdmin: the key service's own setup
// and removal serve a console with one admin only; with two admins they
// refuse, so that no path lets one admin alone change auto-unseal (the
// two-person rule in backend/quorum carries the change out instead).
func TestAutoUnsealDirectChangeNeedsSoleAdmin(t *testing.T) {
	ctx := context.Background()
	module := hsmtest.Token(t, "kh-sole", "1111-pin")
	s := New(openTestDB(t, t.TempDir()), Options{KDF: testKDF})
	if _, err := s.Init(ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddOfficer(ctx, "alice", "bob", RoleAdmin, []byte("bob's passphrase")); err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(hsm.Config{Module: module, TokenLabel: "kh-sole", PIN: []byte("1111-pin")}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	info := UnsealInfo{Kind: "pkcs11", TokenLabel: tok.TokenLabel(), KeyLabel: tok.KeyLabel(), Mechanism: hsm.Mechanism}
	if err := s.SetupAutoUnseal(ctx, "alice", tok, info); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "second admin") {
		t.Fatalf("one admin of two set up auto-unseal directly: %v", err)
	}
	if _, err := s.AutoUnsealInfo(ctx); !errors.Is(err, ErrNoAutoUnseal) {
		t.Fatalf("auto-unseal stored after the refusal: %v", err)
	}
	k, err := s.PrepareAutoUnseal(tok, info)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.SetAutoUnsealTx(ctx, tx, "officer:alice+bob", k, s.now()) }); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAutoUnseal(ctx, "bob"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("one admin of two removed auto-unseal directly: %v", err)
	}
	if _, err := s.AutoUnsealInfo(ctx); err != nil {
		t.Fatalf("auto-unseal gone after the refused removal: %v", err)
	}
}
