package demo

import (
	"context"
	"testing"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/images"
	"keyholder/backend/release"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// TestDemoSetup: the demo console has its officer, three images with
// reference values, a volume per guest, and a 15 s heartbeat interval.
func TestDemoSetup(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Location(t, t.TempDir()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := custody.New(db, custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	fl, err := Setup(ctx, db, cust, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(fl.guests) != 6 {
		t.Fatalf("%d guests", len(fl.guests))
	}
	if _, err := cust.Unlock(ctx, Officer, []byte(Passphrase)); err != nil {
		t.Fatalf("the demo officer cannot log in: %v", err)
	}
	vols, err := custody.ListVolumes(ctx, db)
	if err != nil || len(vols) != 6+2 { // a volume per guest, the claimed one, the VLEK guest's
		t.Fatalf("volumes: %d %v", len(vols), err)
	}
	for _, im := range fixtureImages {
		id, err := images.IDByName(ctx, db, im.name)
		if err != nil {
			t.Fatalf("image %s: %v", im.name, err)
		}
		if _, err := attest.NewReferences(db).Latest(ctx, id); err != nil {
			t.Errorf("image %s has no reference values: %v", im.name, err)
		}
	}
	newID, err := images.IDByName(ctx, db, newImageFixture.name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(db).Latest(ctx, newID); err == nil {
		t.Errorf("image %s has reference values: its first boot must pin them", newImageFixture.name)
	}
	if len(fl.claimants) != 2 || fl.claimants[0].vol != fl.claimants[1].vol || fl.claimants[0].image != newID || fl.vlek == nil || !fl.vlek.sim.VLEK {
		t.Fatalf("guest-trust scenarios: %d claimants, vlek %v", len(fl.claimants), fl.vlek != nil)
	}
	p, err := release.LoadPolicy(ctx, db, "")
	if err != nil || p.Heartbeat() != 15*time.Second {
		t.Fatalf("policy: %+v %v", p, err)
	}
	// The last three first boots wait for the person trying the demo.
	for i, g := range fl.guests {
		if g.autoApprove.Load() != (i < 3) {
			t.Errorf("%s: auto-approve = %v", g.id, g.autoApprove.Load())
		}
	}
}
