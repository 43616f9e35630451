package cli

import (
	"context"
	"testing"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/release"
)

// TestDemoSetup: the demo console has its officer, three images with
// reference values, a volume per guest, and a 15 s heartbeat interval.
func TestDemoSetup(t *testing.T) {
	useCheapKDF(t)
	env := &cliEnv{dataDir: t.TempDir()}
	fl, err := setupDemo(env, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(fl.guests) != 6 {
		t.Fatalf("%d guests", len(fl.guests))
	}
	ctx := context.Background()
	db, err := openStore(ctx, env, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	vols, err := custody.ListVolumes(ctx, db)
	if err != nil || len(vols) != 6+2 { // a volume per guest, the claimed one, the VLEK guest's
		t.Fatalf("volumes: %d %v", len(vols), err)
	}
	for _, im := range demoImages {
		if _, err := attest.NewReferences(db).Latest(ctx, im.id); err != nil {
			t.Errorf("image %s has no reference values: %v", im.id, err)
		}
	}
	if _, err := attest.NewReferences(db).Latest(ctx, demoNewImage.id); err == nil {
		t.Errorf("image %s has reference values: its first boot must pin them", demoNewImage.id)
	}
	if len(fl.claimants) != 2 || fl.claimants[0].vol != fl.claimants[1].vol || fl.vlek == nil || !fl.vlek.sim.VLEK {
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
