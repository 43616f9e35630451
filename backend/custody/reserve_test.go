package custody

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"
)

func TestCreateReservedVolume(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	id, secret := NewVolumeReservation()
	if !validVolumeID(id) || len(secret) != SecretSize || bytes.Equal(secret, make([]byte, SecretSize)) {
		t.Fatalf("reservation %q, %d bytes", id, len(secret))
	}
	// A rolled-back registration leaves nothing.
	errRollback := errors.New("rollback")
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.CreateReservedVolumeTx(ctx, tx, "officer:alice", "", "disk", id, secret); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if _, err := s.ReleaseSecret(ctx, id, 1); err == nil {
		t.Fatal("a rolled-back reservation was registered")
	}
	// Refused: bad IDs, a short secret, no actor.
	for _, tc := range []struct {
		actor, id string
		secret    []byte
	}{
		{"officer:alice", "vol_xyz", secret},
		{"officer:alice", "img_" + id[4:], secret},
		{"officer:alice", id, secret[:16]},
		{"", id, secret},
	} {
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := s.CreateReservedVolumeTx(ctx, tx, tc.actor, "", "disk", tc.id, tc.secret)
			return err
		})
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("%q %q %d bytes: err %v, want ErrInvalid", tc.actor, tc.id, len(tc.secret), err)
		}
	}
	// Registered: the secret is the reserved one; the ID cannot be taken twice.
	var gen int
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		gen, err = s.CreateReservedVolumeTx(ctx, tx, "officer:alice", "", "disk", id, secret)
		return err
	}); err != nil || gen != 1 {
		t.Fatalf("gen %d, %v", gen, err)
	}
	got, err := s.ReleaseSecret(ctx, id, 1)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ReleaseSecret: %v", err)
	}
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := s.CreateReservedVolumeTx(ctx, tx, "officer:alice", "", "again", id, secret)
		return err
	}); err == nil {
		t.Fatal("the same volume ID was registered twice")
	}
	// Locked: refused.
	s.Lock()
	id2, secret2 := NewVolumeReservation()
	if err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := s.CreateReservedVolumeTx(ctx, tx, "officer:alice", "", "disk2", id2, secret2)
		return err
	}); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked: %v", err)
	}
}
