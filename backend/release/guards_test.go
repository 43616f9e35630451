package release

import (
	"errors"
	"testing"
	"time"

	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
)

// Tests for checks that the mutation run (SECURITY-CHECKS.md) found
// unguarded: each fails when its check is removed.

// TestReplayedReportChangesNothing: a genuine report presented again with
// a fresh nonce (REPORT_DATA binds the old one) is refused, and, not being
// evidence of anything now, does not change what the fleet believes.
func TestReplayedReportChangesNothing(t *testing.T) {
	e := newEnv(t)
	g := guest{vm: "vm-replay", vol: e.volume("replay"), chip: 1, meas: 7, launch: 1, tcbSNP: 20}
	a, id := e.approved(g)
	rel, err := e.svc.Poll(e.ctx, id)
	e.wantReleased(a, rel, err, 1)
	re := e.request(g, wire.PurposeBoot, 0)
	re.req.Evidence = a.req.Evidence
	if _, err := e.svc.Release(e.ctx, re.req); code(err) != wire.CodeReportDataMismatch {
		t.Fatalf("replayed report: %v", err)
	}
	if st := e.status("vm-replay"); st != fleet.Verified {
		t.Fatalf("a replayed report changed the VM's status to %s", st)
	}
}

// TestRotationConfirmMatchesItsRequest: a rotation is confirmed only for
// the VM and volume of its request.
func TestRotationConfirmMatchesItsRequest(t *testing.T) {
	e := newEnv(t)
	vol, other := e.volume("data"), e.volume("other")
	g := guest{vm: "vm-rot", vol: vol, chip: 1, meas: 1, launch: 1}
	e.released(g)
	g.launch = 2
	a := e.request(g, wire.PurposeRotate, 0)
	rel, err := e.svc.Release(e.ctx, a.req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Approve(e.ctx, rel.RequestID, e.approver("alice"), ""); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Poll(e.ctx, rel.RequestID)
	e.wantReleased(a, got, err, 1)
	newSecret, err := wire.Open(a.key, got.RequestID, vol, 2, got.NewSealed)
	if err != nil {
		t.Fatal(err)
	}
	conf := wire.RotationConfirm{RequestID: got.RequestID, VMID: g.vm, VolumeID: vol, Generation: 2, Proof: wire.RotationProof(newSecret, got.RequestID, vol, 2)}
	otherVM := conf
	otherVM.VMID = "vm-someone-else"
	if err := e.svc.ConfirmRotation(e.ctx, &otherVM); code(err) != wire.CodeRequestUnknown {
		t.Fatalf("confirm for another VM: %v", err)
	}
	otherVol := conf
	otherVol.VolumeID = other
	if err := e.svc.ConfirmRotation(e.ctx, &otherVol); code(err) != wire.CodeRequestUnknown {
		t.Fatalf("confirm for another volume: %v", err)
	}
	if cur, pend, _ := e.cust.CurrentGeneration(e.ctx, vol); cur != 1 || pend != 2 {
		t.Fatalf("after refused confirmations: current %d pending %d", cur, pend)
	}
	if err := e.svc.ConfirmRotation(e.ctx, &conf); err != nil {
		t.Fatal(err)
	}
}

// TestCompletedRequestCannotBeDenied: a denial after the guest collected
// would rewrite history (the audit log would say denied, the guest has
// the secret).
func TestCompletedRequestCannotBeDenied(t *testing.T) {
	e := newEnv(t)
	a, id := e.approved(guest{vm: "vm-done", vol: e.volume("done"), chip: 1, meas: 7, launch: 1, tcbSNP: 20})
	rel, err := e.svc.Poll(e.ctx, id)
	e.wantReleased(a, rel, err, 1)
	if _, err := e.svc.Deny(e.ctx, id, e.approver("alice"), "too late"); !errors.Is(err, ErrNotPending) {
		t.Fatalf("deny after collection: %v", err)
	}
	if r, _ := GetRequest(e.ctx, e.db, id); r.Status != StatusCompleted {
		t.Fatalf("status: %s", r.Status)
	}
}

// TestCollectChecksVolumeRevocation: a volume revoked after the approval
// releases nothing.
func TestCollectChecksVolumeRevocation(t *testing.T) {
	e := newEnv(t)
	vol := e.volume("vrev")
	_, id := e.approved(guest{vm: "vm-vrev", vol: vol, chip: 1, meas: 7, launch: 1, tcbSNP: 20})
	if err := e.cust.Revoke(e.ctx, "officer:alice", vol, "disk stolen"); err != nil {
		t.Fatal(err)
	}
	e.wantRefusedAtCollection(id, wire.CodeVolumeRevoked, "volume was revoked after the approval")
}

// TestExpiredApprovalReleasesNothing: an approval the guest did not collect
// in time, and a request nobody decided in time, end at the guest's next
// poll: expired, audited, nothing released.
func TestExpiredApprovalReleasesNothing(t *testing.T) {
	e := newEnv(t)
	_, approved := e.approved(guest{vm: "vm-late", vol: e.volume("late"), chip: 1, meas: 7, launch: 1, tcbSNP: 20})
	p := e.request(guest{vm: "vm-wait", vol: e.volume("wait"), chip: 2, meas: 7, launch: 2, tcbSNP: 20}, wire.PurposeBoot, 0)
	rel, err := e.svc.Release(e.ctx, p.req)
	if err != nil || rel.Status != wire.StatusPending {
		t.Fatalf("pending: %+v %v", rel, err)
	}
	e.clk.Advance(DefaultPolicy().TTL() + time.Second)
	for _, id := range []string{approved, rel.RequestID} {
		if got, err := e.svc.Poll(e.ctx, id); code(err) != wire.CodeRequestExpired {
			t.Fatalf("poll of %s after its expiry: %+v %v", id, got, err)
		}
		if r, _ := GetRequest(e.ctx, e.db, id); r.Status != StatusExpired {
			t.Fatalf("%s: %s", id, r.Status)
		}
	}
}
