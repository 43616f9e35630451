package custody

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestAuthenticateBackoffIsPersisted(t *testing.T) {
	ctx := context.Background()
	s, c := newTestService(t)
	good := []byte("correct horse battery")
	for i := 1; i <= freeAttempts; i++ {
		if _, err := s.Authenticate(ctx, "alice", []byte("wrong passphrase!")); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("attempt %d: err = %v, want ErrWrongPassphrase", i, err)
		}
	}
	// The third failure set a wait; a new Service over the same file (a
	// console restart) still sees it, even with the right passphrase.
	s2 := New(s.DB(), Options{KDF: testKDF, Now: c.Now})
	_, err := s2.Authenticate(ctx, "alice", good)
	var te *ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != time.Second {
		t.Fatalf("after %d failures: err = %v, want a 1s ThrottledError", freeAttempts, err)
	}
	c.Advance(time.Second)
	if _, err := s2.Authenticate(ctx, "alice", []byte("wrong again......")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatal(err)
	}
	if _, err := s2.Authenticate(ctx, "alice", good); !errors.As(err, &te) || te.RetryAfter != 2*time.Second {
		t.Fatalf("the wait did not double: %v", err)
	}
	c.Advance(2 * time.Second)
	o, err := s2.Authenticate(ctx, "alice", good)
	if err != nil || o.FailedAttempts != 0 {
		t.Fatalf("right passphrase after the wait: %+v, %v", o, err)
	}
	var denies int
	s.DB().QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'officer.auth' AND decision = 'deny'`).Scan(&denies)
	if denies != freeAttempts+3 {
		t.Fatalf("%d denied attempts audited, want %d", denies, freeAttempts+3)
	}
}

func TestBackoffSchedule(t *testing.T) {
	for _, c := range []struct {
		fails int
		want  time.Duration
	}{{0, 0}, {2, 0}, {3, time.Second}, {4, 2 * time.Second}, {12, 512 * time.Second}, {13, maxBackoff}, {1000, maxBackoff}} {
		if got := backoff(c.fails); got != c.want {
			t.Errorf("backoff(%d) = %v, want %v", c.fails, got, c.want)
		}
	}
}

func TestOfficersAndRoles(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	pass := []byte("bob's long passphrase")
	cases := []struct {
		name string
		run  func() error
		want error
	}{
		{"admin adds approver", func() error { _, err := s.AddOfficer(ctx, "alice", "bob", RoleApprover, pass); return err }, nil},
		{"duplicate name", func() error { _, err := s.AddOfficer(ctx, "alice", "bob", RoleViewer, pass); return err }, ErrOfficerExists},
		{"approver cannot add", func() error { _, err := s.AddOfficer(ctx, "bob", "carol", RoleViewer, pass); return err }, ErrForbidden},
		{"unknown role", func() error { _, err := s.AddOfficer(ctx, "alice", "carol", "root", pass); return err }, ErrInvalid},
		{"short passphrase", func() error { _, err := s.AddOfficer(ctx, "alice", "carol", RoleViewer, []byte("short")); return err }, ErrWeakPassphrase},
		{"bad name", func() error { _, err := s.AddOfficer(ctx, "alice", " x", RoleViewer, pass); return err }, ErrInvalid},
		{"approver may approve", func() error { _, err := s.AuthenticateApprover(ctx, "bob", pass); return err }, nil},
		{"viewer may not approve", func() error {
			if _, err := s.AddOfficer(ctx, "alice", "vic", RoleViewer, pass); err != nil {
				return err
			}
			_, err := s.AuthenticateApprover(ctx, "vic", pass)
			return err
		}, ErrForbidden},
		{"unknown officer looks like a wrong passphrase", func() error { _, err := s.Authenticate(ctx, "mallory", pass); return err }, ErrWrongPassphrase},
		{"last admin stays", func() error { return s.RemoveOfficer(ctx, "alice", "alice") }, ErrLastAdmin},
		{"last admin keeps role", func() error { return s.SetRole(ctx, "alice", "alice", RoleViewer) }, ErrLastAdmin},
		{"destroy needs admin", func() error { return s.Destroy(ctx, "bob", "vol_x", "vol_x") }, ErrForbidden},
		{"split needs admin", func() error { _, err := s.SplitRecovery(ctx, "bob", 2, 3); return err }, ErrForbidden},
		{"remove officer", func() error { return s.RemoveOfficer(ctx, "alice", "vic") }, nil},
		{"removed officer cannot log in", func() error { _, err := s.Authenticate(ctx, "vic", pass); return err }, ErrWrongPassphrase},
		{"change passphrase", func() error { return s.ChangePassphrase(ctx, "bob", pass, []byte("a new long passphrase")) }, nil},
		{"old passphrase no longer works", func() error { _, err := s.Authenticate(ctx, "bob", pass); return err }, ErrWrongPassphrase},
	}
	for _, c := range cases {
		if err := c.run(); !errors.Is(err, c.want) {
			t.Fatalf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	// A second officer's envelope unlocks a fresh (locked) service.
	s2 := New(s.DB(), Options{KDF: testKDF})
	if _, err := s2.Unlock(ctx, "bob", []byte("a new long passphrase")); err != nil || !s2.Unlocked() {
		t.Fatalf("bob unlocks: %v", err)
	}
	if _, err := s2.Unlock(ctx, "", []byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unnamed officer among several: %v", err)
	}
}

func TestLockedServiceRefusesKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	id, _, secret, err := s.CreateVolume(ctx, "officer:alice", "", "disk")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	s.Lock()
	if _, err := s.ReleaseSecret(ctx, id, 1); !errors.Is(err, ErrLocked) {
		t.Fatalf("release while locked: %v", err)
	}
	if _, _, _, err := s.CreateVolume(ctx, "officer:alice", "", "disk 2"); !errors.Is(err, ErrLocked) {
		t.Fatalf("create while locked: %v", err)
	}
	if _, err := s.Rotate(ctx, "officer:alice", id); !errors.Is(err, ErrLocked) {
		t.Fatalf("rotate while locked: %v", err)
	}
	if _, err := s.Init(ctx, "eve", []byte("another passphrase")); !errors.Is(err, ErrInitialized) {
		t.Fatalf("second init: %v", err)
	}
}

func TestPassphraseChecksAreBounded(t *testing.T) {
	s, _ := newTestService(t)
	// Both slots busy: a check waits, and gives up with its context
	// without counting a failure.
	s.kdf <- struct{}{}
	s.kdf <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Authenticate(ctx, "alice", []byte("wrong passphrase!")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	<-s.kdf
	o, err := s.Authenticate(context.Background(), "alice", []byte("correct horse battery"))
	if err != nil || o.FailedAttempts != 0 {
		t.Fatalf("after a slot frees: %+v %v", o, err)
	}
}

// TestDefaultKDFEnvelope is the one test that pays the production Argon2id
// cost: the default parameters pass validation and round-trip an envelope.
func TestDefaultKDFEnvelope(t *testing.T) {
	if err := DefaultKDF.validate(); err != nil {
		t.Fatal(err)
	}
	master := bytes.Repeat([]byte{9}, keySize)
	salt, wrapped := wrapMaster(master, []byte("production passphrase"), DefaultKDF, "con_x", "off_x")
	got, err := unwrapMaster([]byte("production passphrase"), salt, wrapped, DefaultKDF, "con_x", "off_x")
	if err != nil || !bytes.Equal(got, master) {
		t.Fatalf("round trip: %v", err)
	}
	for _, p := range []KDFParams{{}, {Time: 1, MemoryKiB: 4, Threads: 1}, {Time: 1, MemoryKiB: 2 << 20, Threads: 1}, {Time: 100, MemoryKiB: 64, Threads: 1}} {
		if _, err := unwrapMaster([]byte("x"), salt, wrapped, p, "con_x", "off_x"); err == nil {
			t.Errorf("parameters %+v accepted", p)
		}
	}
}
