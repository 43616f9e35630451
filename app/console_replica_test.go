package app

import (
	"context"
	"testing"

	"keyholder/backend/replica"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// TestConsoleInfoShowsReplicas: Settings' console info names the database
// kind, the replica that answers and every replica on the database.
func TestConsoleInfoShowsReplicas(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.Options{})
	self, err := replica.Register(ctx, db, "http://127.0.0.1:1/", "127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	other, err := replica.Register(ctx, db, "http://127.0.0.1:3/", "127.0.0.1:4")
	if err != nil {
		t.Fatal(err)
	}
	svcs := New(ctx, Config{Version: "test", Mode: "web", Replica: self}, db, NewHub())
	info, err := svcs.Console.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Replica != self.ID() || info.Database != db.Dialect().String() || len(info.Replicas) != 2 {
		t.Fatalf("info: replica %q database %q replicas %+v", info.Replica, info.Database, info.Replicas)
	}
	for _, r := range info.Replicas {
		if !r.Alive || r.Self != (r.ID == self.ID()) || (r.ID != self.ID() && r.ID != other.ID()) {
			t.Errorf("replica %+v", r)
		}
	}
}
