package app

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/shamir"
	"keyholder/backend/store"
)

func TestRecoverySharesAndBackupDownload(t *testing.T) {
	s, c := newSessionServices(t, "web")
	if _, err := s.Keys.RecoveryShares(anon(s), 2, 3); code(err) != CodeUnauthorized {
		t.Fatalf("shares before any session: %v", err)
	}
	alice := setupAs(t, s, "alice", "alice's passphrase")
	for _, tc := range []struct{ m, n int }{{1, 3}, {4, 3}, {2, 17}} {
		if _, err := s.Keys.RecoveryShares(alice, tc.m, tc.n); code(err) != CodeInvalid {
			t.Errorf("RecoveryShares(%d, %d): %v, want invalid", tc.m, tc.n, err)
		}
	}
	out, err := s.Keys.RecoveryShares(alice, 2, 3)
	if err != nil || !out.Done {
		t.Fatalf("one admin's shares: %+v %v", out.Action, err)
	}
	shares := out.Shares
	if len(shares) != 3 {
		t.Fatalf("%d shares", len(shares))
	}
	var parsed []shamir.Share
	for _, sh := range shares[1:] {
		p, err := shamir.Parse(sh)
		if err != nil {
			t.Fatalf("share %q does not parse: %v", sh, err)
		}
		parsed = append(parsed, p)
	}
	if _, err := shamir.Combine(parsed); err != nil {
		t.Fatalf("2 of 3 shares do not combine: %v", err)
	}

	bo, err := s.Keys.BackupDownload(alice)
	if err != nil || bo.Backup == nil {
		t.Fatalf("one admin's backup: %+v %v", bo.Action, err)
	}
	f := bo.Backup
	if !strings.HasSuffix(f.Name, ".khbackup") || len(f.Data) < 1024 || f.Info.ConsoleID == "" {
		t.Fatalf("backup file %q, %d bytes, %+v", f.Name, len(f.Data), f.Info)
	}
	// The download restores into a fresh console with the officer's passphrase.
	dbPath := filepath.Join(t.TempDir(), "restored.db")
	if _, err := custody.RestoreBackup(context.Background(), bytes.NewReader(f.Data), dbPath, custody.RestoreOptions{Officer: "alice", Passphrase: []byte("alice's passphrase")}); err != nil {
		t.Fatalf("restore the downloaded backup: %v", err)
	}
	db, err := store.Open(context.Background(), dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'recovery.split'`).Scan(&n)
	if n == 0 {
		t.Error("splitting the key was not audited (or not in the backup)")
	}

	// A stale authentication must re-enter the passphrase first.
	c.Advance(DefaultFreshAuth + time.Second)
	if _, err := s.Keys.RecoveryShares(alice, 2, 3); code(err) != CodeReauth {
		t.Fatalf("stale session: %v, want reauth_required", err)
	}
	if _, err := s.Keys.BackupDownload(alice); code(err) != CodeReauth {
		t.Fatalf("stale session backup: %v, want reauth_required", err)
	}
}
