package audit

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"keyholder/backend/store"
)

// TestListFilters runs each filter of Query against a small log whose
// requests and guests live in the release engine's and the fleet's tables,
// as in a running console.
func TestListFilters(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`INSERT INTO images(id, name, created_at, created_by) VALUES ('img_a', 'a', '2026-05-01T00:00:00.000000000Z', 'officer:alice')`,
			`INSERT INTO volumes(id, image_id, name, created_at) VALUES ('vol_1', 'img_a', 'one', '2026-05-01T00:00:00.000000000Z')`,
			`INSERT INTO volumes(id, image_id, name, created_at) VALUES ('vol_2', 'img_a', 'two', '2026-05-01T00:00:00.000000000Z')`,
			`INSERT INTO vms(id, name, volume_id, created_at) VALUES ('vm-1', 'vm-1', 'vol_1', '2026-05-01T00:00:00.000000000Z')`,
			`INSERT INTO approval_requests(id, vm_id, volume_id, purpose, generation, class, evidence_hash, hpke_public_key, created_at, expires_at)
			 VALUES ('req_r', 'vm-1', 'vol_1', 'boot', 1, 'restore', '', x'00', '2026-05-01T00:00:00.000000000Z', '2026-05-01T01:00:00.000000000Z')`,
			`INSERT INTO approval_requests(id, vm_id, volume_id, purpose, generation, class, evidence_hash, hpke_public_key, created_at, expires_at)
			 VALUES ('req_m', 'vm-2', 'vol_2', 'boot', 1, 'migration', '', x'00', '2026-05-01T00:00:00.000000000Z', '2026-05-01T01:00:00.000000000Z')`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		for i, e := range []Entry{
			{Actor: "officer:alice", Action: "volume.create", Subject: "vol_1", Decision: "ok"},                                                            // 1
			{Actor: "guest:vm-1", Action: "release", Subject: "vol_1", Decision: "pending", Reason: "restore needs 1 approval(s); request req_r"},          // 2
			{Actor: "guest:vm-2", Action: "release", Subject: "vol_2", Decision: "pending", Reason: "migration + platform_change needs 2 approval(s)"},     // 3
			{Actor: "officer:bob", Action: "release.deny", Subject: "req_m", Decision: "denied", Reason: "migration of vm-2 (volume vol_2): unknown host"}, // 4
			{Actor: "officer:alice", Action: "release.approve", Subject: "req_r", Decision: "approved", Reason: "restore of vm-1 (volume vol_1): ok"},      // 5
			{Actor: "guest:vm-1", Action: "release", Subject: "vol_1", Decision: "released", Reason: "restore; approved; generation 1; request req_r"},     // 6
			{Actor: "officer:bob", Action: "officer.auth", Subject: "off_b", Decision: "allow"},                                                            // 7
			{Actor: "console", Action: "release.expire", Subject: "req_m", Decision: "expired"},                                                            // 8
			{Actor: "guest:vm-3", Action: "release", Subject: "vol_3", Decision: "released", Reason: "routine_boot; known launch; generation 1"},           // 9
		} {
			e.At = t0.Add(time.Duration(i) * time.Hour)
			if _, err := NewLog(db).Append(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    Query
		want []int64
	}{
		{"everything", Query{}, []int64{9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"actor by name", Query{Actor: "bob"}, []int64{7, 4}},
		{"actor as stored", Query{Actor: "guest:vm-1"}, []int64{6, 2}},
		{"actor is not a substring match", Query{Actor: "ali"}, nil},
		{"action exact", Query{Action: "release.deny"}, []int64{4}},
		{"action family", Query{Action: "release"}, []int64{9, 8, 6, 5, 4, 3, 2}},
		{"class through the request", Query{Class: "migration"}, []int64{8, 4, 3}},
		{"class of releases and pending", Query{Class: "restore"}, []int64{6, 5, 2}},
		{"class second in a pending entry", Query{Class: "platform_change"}, []int64{3}},
		{"class of a routine release", Query{Class: "routine_boot"}, []int64{9}},
		{"vm: its guest, its requests, its volume", Query{VM: "vm-1"}, []int64{6, 5, 2, 1}},
		{"vm with requests only", Query{VM: "vm-2"}, []int64{8, 4, 3}},
		{"from", Query{From: t0.Add(7 * time.Hour)}, []int64{9, 8}},
		{"to is exclusive", Query{To: t0.Add(2 * time.Hour)}, []int64{2, 1}},
		{"date range and action", Query{From: t0.Add(time.Hour), To: t0.Add(6 * time.Hour), Action: "release"}, []int64{6, 5, 4, 3, 2}},
		{"filters combine", Query{Actor: "alice", VM: "vm-1"}, []int64{5, 1}},
		{"search still works", Query{Search: "UNKNOWN host"}, []int64{4}},
		{"like wildcards are literal", Query{Class: "%"}, nil},
		{"paging", Query{Action: "release", BeforeSeq: 5, Limit: 2}, []int64{4, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := List(ctx, db, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, e := range es {
				got = append(got, e.Seq)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("seqs = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := List(ctx, db, Query{From: t0.Add(time.Hour), To: t0}); !errors.Is(err, ErrInvalidQuery) {
		t.Fatalf("empty date range: err = %v, want ErrInvalidQuery", err)
	}
}
