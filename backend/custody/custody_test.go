package custody

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
	"keyholder/internal/testclock"
)

// testKDF is cheap so tests stay fast; the parameters travel with each
// envelope, so production envelopes use DefaultKDF.
var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func openTestDB(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), storetest.Location(t, dir), store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newTestService(t *testing.T) (*Service, *testclock.Clock) {
	t.Helper()
	c := testclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := New(openTestDB(t, t.TempDir()), Options{KDF: testKDF, Now: c.Now, CheckpointEvery: 5})
	if _, err := s.Init(context.Background(), "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestVolumeLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	id, gen, secret, err := s.CreateVolume(ctx, "officer:alice", "", "data disk")
	if err != nil || gen != 1 || len(secret) != SecretSize {
		t.Fatalf("CreateVolume = %s %d %d bytes, %v", id, gen, len(secret), err)
	}
	got, err := s.ReleaseSecret(ctx, id, 1)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ReleaseSecret(1) = %v, want the created secret", err)
	}
	if _, err := s.ReleaseSecret(ctx, id, 7); !errors.Is(err, ErrNoGeneration) {
		t.Fatalf("ReleaseSecret of a generation that does not exist: %v, want ErrNoGeneration", err)
	}
	if _, err := s.ReleaseSecret(ctx, "vol_nope", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ReleaseSecret of a volume that does not exist: %v, want ErrNotFound", err)
	}
	if _, _, err := s.CurrentGeneration(ctx, "vol_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CurrentGeneration of a volume that does not exist: %v, want ErrNotFound", err)
	}
	if cur, pend, err := s.CurrentGeneration(ctx, id); err != nil || cur != 1 || pend != 0 {
		t.Fatalf("CurrentGeneration before rotation = %d/%d %v, want 1/0", cur, pend, err)
	}
	g2, err := s.Rotate(ctx, "officer:alice", id)
	if err != nil || g2 != 2 {
		t.Fatalf("Rotate = %d, %v", g2, err)
	}
	if _, err := s.Rotate(ctx, "officer:alice", id); !errors.Is(err, ErrRotationPending) {
		t.Fatalf("second Rotate: err = %v, want ErrRotationPending", err)
	}
	cur, pend, err := s.CurrentGeneration(ctx, id)
	if err != nil || cur != 1 || pend != 2 {
		t.Fatalf("CurrentGeneration = %d/%d %v, want 1/2", cur, pend, err)
	}
	if err := s.ConfirmRotation(ctx, "guest:vm1", id, 2); err != nil {
		t.Fatal(err)
	}
	cur, pend, _ = s.CurrentGeneration(ctx, id)
	if cur != 2 || pend != 0 {
		t.Fatalf("after confirm: %d/%d, want 2/0", cur, pend)
	}
	if old, err := s.ReleaseSecret(ctx, id, 1); err != nil || !bytes.Equal(old, secret) {
		t.Fatalf("superseded generation 1 no longer opens: %v", err)
	}
	if err := s.Revoke(ctx, "officer:alice", id, "stolen"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReleaseSecret(ctx, id, 2); !errors.Is(err, ErrRevoked) {
		t.Fatalf("release after revoke: err = %v, want ErrRevoked", err)
	}
	if err := s.Destroy(ctx, "alice", id, "wrong"); !errors.Is(err, ErrConfirmation) {
		t.Fatalf("destroy without confirmation: %v", err)
	}
	if err := s.Destroy(ctx, "alice", id, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReleaseSecret(ctx, id, 2); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("release after destroy: err = %v, want ErrDestroyed", err)
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}
