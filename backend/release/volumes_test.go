package release

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
)

// TestSeveralVolumesPerVM: a VM whose root is a Keyholder volume opens a
// Keyholder data disk in the same boot. The data volume, new to the VM,
// waits for an officer like a first boot; once approved, both volumes are
// routine on later boots; a launch still serves one VM ID only; revoking
// one volume leaves the others working, revoking the VM closes them all.
func TestSeveralVolumesPerVM(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	root, data, logs := e.volume("os-root"), e.volume("os-data"), e.volume("os-logs")
	g := guest{vm: "vm-os", vol: root, chip: 1, meas: 7, launch: 1, tcbSNP: 20}
	e.released(g) // the root's first boot, approved

	// The same boot asks for the data volume: new to this VM, so an officer
	// decides (not routine, not refused).
	gd := g
	gd.vol = data
	a := e.request(gd, wire.PurposeBoot, 0)
	rel, err := e.svc.Release(ctx, a.req)
	if err != nil || rel.Status != wire.StatusPending || rel.Class != string(ClassFirstBoot) {
		t.Fatalf("a data volume new to the VM: got %+v, %v; want pending first_boot", rel, err)
	}
	dataReq := rel.RequestID
	// A third volume asked for meanwhile does not end the data volume's
	// request (a request is superseded only by the same volume's).
	gl := g
	gl.vol = logs
	al := e.request(gl, wire.PurposeBoot, 0)
	if rel, err := e.svc.Release(ctx, al.req); err != nil || rel.Status != wire.StatusPending {
		t.Fatalf("a second new volume: got %+v, %v; want pending", rel, err)
	}
	r, err := GetRequest(ctx, e.db, dataReq)
	if err != nil || r.Status != StatusPending {
		t.Fatalf("the data volume's request after another volume's: %+v %v", r.Status, err)
	}
	// The officer's card says what the VM holds already.
	var sum Summary
	if err := json.Unmarshal(r.Summary, &sum); err != nil {
		t.Fatal(err)
	}
	if !sum.NewVolume || !reflect.DeepEqual(sum.VMVolumes, []string{root}) {
		t.Errorf("summary: new_volume %v, vm_volumes %v; want true, [%s]", sum.NewVolume, sum.VMVolumes, root)
	}
	if _, err := e.svc.Approve(ctx, dataReq, e.approver("alice"), "the data disk of vm-os"); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Poll(ctx, dataReq)
	e.wantReleased(a, got, err, 1)

	fl := fleet.New(e.db, e.cust.AuditLog())
	d, err := fl.Get(ctx, "vm-os", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{root, data}
	slices.Sort(want)
	if !reflect.DeepEqual(d.Volumes, want) {
		t.Errorf("volumes of vm-os = %v, want %v", d.Volumes, want)
	}

	// Reboot: both volumes are routine, without a request.
	g.launch, gd.launch = 2, 2
	for _, gg := range []guest{g, gd} {
		a := e.request(gg, wire.PurposeBoot, 0)
		rel, err := e.svc.Release(ctx, a.req)
		e.wantReleased(a, rel, err, 1)
		if rel.Class != string(ClassRoutine) {
			t.Errorf("reboot, volume %s: class %s, want routine_boot", gg.vol, rel.Class)
		}
	}
	// Each volume's heartbeat keeps the guest verified.
	for _, gg := range []guest{g, gd} {
		hb := e.request(gg, wire.PurposeHeartbeat, 0)
		if h, err := e.svc.Heartbeat(ctx, hb.req); err != nil || h.Status != "verified" {
			t.Fatalf("heartbeat of volume %s: %+v %v", gg.vol, h, err)
		}
	}
	// A routine boot with a new measurement, chip or TCB is still no routine
	// for the data volume either.
	moved := gd
	moved.chip, moved.launch = 5, 3
	am := e.request(moved, wire.PurposeBoot, 0)
	if rel, err := e.svc.Release(ctx, am.req); err != nil || rel.Status != wire.StatusPending || rel.Class != string(ClassMigration) {
		t.Fatalf("data volume on a new chip: %+v %v; want pending migration", rel, err)
	}

	// One launch serves one VM ID: another VM ID presenting vm-os's launch
	// gets neither volume.
	for _, vol := range []string{root, data} {
		other := guest{vm: "vm-thief", vol: vol, chip: 1, meas: 7, launch: 2, tcbSNP: 20}
		if _, err := e.svc.Release(ctx, e.request(other, wire.PurposeBoot, 0).req); code(err) != wire.CodeReportOtherVM {
			t.Errorf("another VM ID with vm-os's launch, volume %s: %v; want %s", vol, err, wire.CodeReportOtherVM)
		}
	}

	// Revoking the data volume leaves the root working.
	if err := e.cust.Revoke(ctx, "officer:alice", data, "disk retired"); err != nil {
		t.Fatal(err)
	}
	g.launch, gd.launch = 4, 4
	a = e.request(g, wire.PurposeBoot, 0)
	rel, err = e.svc.Release(ctx, a.req)
	e.wantReleased(a, rel, err, 1)
	if rel.Class != string(ClassRoutine) {
		t.Errorf("root after the data volume's revocation: class %s", rel.Class)
	}
	if _, err := e.svc.Release(ctx, e.request(gd, wire.PurposeBoot, 0).req); code(err) != wire.CodeVolumeRevoked {
		t.Errorf("revoked data volume: %v; want %s", err, wire.CodeVolumeRevoked)
	}
	hb := e.request(g, wire.PurposeHeartbeat, 0)
	if h, err := e.svc.Heartbeat(ctx, hb.req); err != nil || h.Status != "verified" {
		t.Fatalf("root heartbeat after the data volume's revocation: %+v %v", h, err)
	}

	// Revoking the VM closes everything: every volume, and the open
	// request of the third one.
	if err := fl.Revoke(ctx, "officer:alice", "vm-os", "decommissioned", DenyRequestsOfRevokedTx); err != nil {
		t.Fatal(err)
	}
	g.launch, gl.launch = 5, 5
	for _, gg := range []guest{g, gl} {
		if _, err := e.svc.Release(ctx, e.request(gg, wire.PurposeBoot, 0).req); code(err) != wire.CodeVMRevoked {
			t.Errorf("revoked VM, volume %s: %v; want %s", gg.vol, err, wire.CodeVMRevoked)
		}
	}
	open, err := ListRequests(ctx, e.db, StatusPending)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range open {
		if r.VMID == "vm-os" {
			t.Errorf("request %s of the revoked VM (volume %s) is still pending", r.ID, r.VolumeID)
		}
	}
}
