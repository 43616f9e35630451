package custody

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"

	"keyholder/backend/store"
)

// TestQueuedReadsAnswerAsTheirTxForms: the release engine's batched reads
// (QueueReleaseSecret, QueueCurrentGeneration) give what ReleaseSecretTx
// and CurrentGenerationTx give: the secret of an active generation, the
// refusal of a revoked volume and of a generation that does not exist,
// ErrNotFound for an unknown volume, and the pending generation of a
// rotation.
func TestQueuedReadsAnswerAsTheirTxForms(t *testing.T) {
	s, _ := newTestService(t)
	ctx := context.Background()
	active, _, secret, err := s.CreateVolume(ctx, "officer:alice", "", "active")
	if err != nil {
		t.Fatal(err)
	}
	revoked, _, _, err := s.CreateVolume(ctx, "officer:alice", "", "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "officer:alice", revoked, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rotate(ctx, "officer:alice", active); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		volume string
		gen    int
	}{{active, 1}, {active, 2}, {active, 7}, {revoked, 1}, {"vol_unknown", 1}}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var b store.Batch
		var queued []func() ([]byte, error)
		for _, c := range cases {
			queued = append(queued, s.QueueReleaseSecret(&b, c.volume, c.gen))
		}
		gens := s.QueueCurrentGeneration(&b, active)
		noGens := s.QueueCurrentGeneration(&b, "vol_unknown")
		if err := store.RunBatch(ctx, tx, &b); err != nil {
			return err
		}
		for i, c := range cases {
			got, gotErr := queued[i]()
			want, wantErr := s.ReleaseSecretTx(ctx, tx, c.volume, c.gen)
			if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
				t.Fatalf("%s generation %d: queued %x, %v; ReleaseSecretTx %x, %v", c.volume, c.gen, got, gotErr, want, wantErr)
			}
		}
		if got, _ := queued[0](); !bytes.Equal(got, secret) {
			t.Fatal("the queued read does not give the volume's secret")
		}
		cur, pending, err := gens()
		if cur != 1 || pending != 2 || err != nil {
			t.Fatalf("generations %d, %d, %v; want 1, 2", cur, pending, err)
		}
		if _, _, err := noGens(); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("generations of an unknown volume: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
