package release

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"keyholder/backend/attest"
	"keyholder/backend/audit"
	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

// These tests are about what collecting an approved secret checks again:
// everything an officer or an attacker may have changed between the
// approval and the guest's next poll. Each one fails when its check in
// collectTx is removed (see SECURITY-CHECKS.md).

// approved makes a first-boot request of g and approves it once; it
// returns the attempt and the request ID.
func (e *testEnv) approved(g guest) (attempt, string) {
	e.t.Helper()
	a := e.request(g, wire.PurposeBoot, 0)
	rel, err := e.svc.Release(e.ctx, a.req)
	if err != nil || rel.Status != wire.StatusPending {
		e.t.Fatalf("first boot: %+v %v", rel, err)
	}
	req, err := e.svc.Approve(e.ctx, rel.RequestID, e.approver("alice"), "")
	if err != nil || req.Status != StatusApproved {
		e.t.Fatalf("approve: %+v %v", req, err)
	}
	return a, rel.RequestID
}

// wantRefusedAtCollection polls request id and wants refusal code with msg
// in its message; the request ends denied with the reason, and the refusal
// is audited.
func (e *testEnv) wantRefusedAtCollection(id string, want wire.Code, msg string) {
	e.t.Helper()
	rel, err := e.svc.Poll(e.ctx, id)
	if code(err) != want || !strings.Contains(err.Error(), msg) {
		if rel != nil {
			e.t.Fatalf("poll: got %s; want %s (%q)", rel.Status, want, msg)
		}
		e.t.Fatalf("poll: got %v; want %s (%q)", err, want, msg)
	}
	r, err := GetRequest(e.ctx, e.db, id)
	if err != nil || r.Status != StatusDenied || !strings.Contains(r.Reason, msg) {
		e.t.Fatalf("request after the refusal: %+v %v", r, err)
	}
	entries, err := audit.List(e.ctx, e.db, audit.Query{Search: id, Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, en := range entries {
		if en.Action == "release" && en.Decision == "denied" && strings.Contains(en.Reason, msg) {
			if _, err := e.svc.Poll(e.ctx, id); code(err) == "" {
				e.t.Fatal("a second poll released the secret")
			}
			return
		}
	}
	e.t.Fatalf("refusal of %s not audited: %+v", id, entries)
}

// TestCollectChecksApprovalsCoverTheEvidence: an approval whose evidence
// hash is not the request's (the database altered, or a bug that records
// the wrong hash) releases nothing.
func TestCollectChecksApprovalsCoverTheEvidence(t *testing.T) {
	for _, c := range []struct {
		name, sql string
	}{
		{"approval bound to other evidence", `UPDATE approvals SET evidence_hash = 'ab' || substr(evidence_hash, 3) WHERE request_id = ?`},
		{"request evidence replaced", `UPDATE approval_requests SET evidence_hash = 'ab' || substr(evidence_hash, 3) WHERE id = ?`},
		{"approval missing", `DELETE FROM approvals WHERE request_id = ?`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			_, id := e.approved(guest{vm: "vm-ev", vol: e.volume("ev"), chip: 1, meas: 7, launch: 1, tcbSNP: 20})
			if _, err := e.db.Exec(c.sql, id); err != nil {
				t.Fatal(err)
			}
			e.wantRefusedAtCollection(id, wire.CodeDeniedByOfficer, "do not cover this evidence")
		})
	}
}

// TestCollectChecksRevocation: a VM revoked after its request was approved
// does not get the secret, even when the request was left open (a revocation
// written by another console of the same database, or restored from a
// backup).
func TestCollectChecksRevocation(t *testing.T) {
	e := newEnv(t)
	_, id := e.approved(guest{vm: "vm-rv", vol: e.volume("rv"), chip: 1, meas: 7, launch: 1, tcbSNP: 20})
	if _, err := e.db.Exec(`UPDATE vms SET revoked = 1, status = 'revoked' WHERE id = 'vm-rv'`); err != nil {
		t.Fatal(err)
	}
	e.wantRefusedAtCollection(id, wire.CodeVMRevoked, "revoked after the approval")
}

// TestRevokingAVMClosesItsRequests: revoking a VM ends its open requests
// (pending and approved) in the same transaction, audited; the guest's
// next poll is refused.
func TestRevokingAVMClosesItsRequests(t *testing.T) {
	e := newEnv(t)
	g := guest{vm: "vm-close", vol: e.volume("close"), chip: 1, meas: 7, launch: 1, tcbSNP: 20}
	_, approvedID := e.approved(g)
	// An unrelated VM's pending request stays open.
	other := guest{vm: "vm-keep", vol: e.volume("keep"), chip: 3, meas: 7, launch: 5, tcbSNP: 20}
	o := e.request(other, wire.PurposeBoot, 0)
	orel, err := e.svc.Release(e.ctx, o.req)
	if err != nil || orel.Status != wire.StatusPending {
		t.Fatalf("other VM: %+v %v", orel, err)
	}
	if err := fleet.New(e.db, e.cust.AuditLog()).Revoke(e.ctx, "officer:alice", "vm-close", "stolen disk image", DenyRequestsOfRevokedTx); err != nil {
		t.Fatal(err)
	}
	r, err := GetRequest(e.ctx, e.db, approvedID)
	if err != nil || r.Status != StatusDenied || !strings.Contains(r.Reason, "revoked") {
		t.Fatalf("approved request after the revocation: %s %q %v", r.Status, r.Reason, err)
	}
	if _, err := e.svc.Poll(e.ctx, approvedID); code(err) != wire.CodeDeniedByOfficer {
		t.Fatalf("poll after the revocation: %v", err)
	}
	entries, _ := audit.List(e.ctx, e.db, audit.Query{Search: approvedID, Limit: 100})
	closed := false
	for _, en := range entries {
		closed = closed || (en.Action == "release.deny" && en.Actor == "officer:alice" && strings.Contains(en.Reason, "revoked"))
	}
	if !closed {
		t.Fatalf("closing the request is not audited: %+v", entries)
	}
	if r, _ := GetRequest(e.ctx, e.db, orel.RequestID); r.Status != StatusPending {
		t.Fatalf("another VM's request: %s", r.Status)
	}
}

// TestCollectChecksTheCurrentPolicy: an officer who tightens the policy
// after an approval (more approvers for the class, or deny it) stops the
// release.
func TestCollectChecksTheCurrentPolicy(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Policy
		want wire.Code
		msg  string
	}{
		{"more approvers", Policy{Approvers: map[Class]int{ClassFirstBoot: 2}}, wire.CodeDeniedByPolicy, "now needs 2 approvals"},
		{"class denied", Policy{Actions: map[Class]Action{ClassFirstBoot: ActionDeny}}, wire.CodeDeniedByPolicy, "now denies first_boot"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			_, id := e.approved(guest{vm: "vm-pol", vol: e.volume("pol"), chip: 1, meas: 7, launch: 1, tcbSNP: 20})
			if err := SetPolicy(e.ctx, e.cust.AuditLog(), "officer:alice", "", &c.p); err != nil {
				t.Fatal(err)
			}
			e.wantRefusedAtCollection(id, c.want, c.msg)
		})
	}
	// A policy change that does not touch the class leaves the approval good.
	e := newEnv(t)
	a, id := e.approved(guest{vm: "vm-ok", vol: e.volume("ok"), chip: 1, meas: 7, launch: 1, tcbSNP: 20})
	if err := SetPolicy(e.ctx, e.cust.AuditLog(), "officer:alice", "", &Policy{Approvers: map[Class]int{ClassMigration: 3}}); err != nil {
		t.Fatal(err)
	}
	rel, err := e.svc.Poll(e.ctx, id)
	e.wantReleased(a, rel, err, 1)
}

// refVerifier is fakeVerifier that reports the reference values version it
// applied, as AttestVerifier does.
type refVerifier struct {
	fakeVerifier
	db *store.DB
}

func (v refVerifier) Verify(ctx context.Context, ev wire.Evidence, image ImageRef, expected [64]byte) (Claims, error) {
	c, err := v.fakeVerifier.Verify(ctx, ev, image, expected)
	if err != nil || image.ID == "" {
		return c, err
	}
	rv, err := attest.NewReferences(v.db).Latest(ctx, image.ID)
	switch {
	case err == nil:
		c.ReferenceVersion = rv.Version
	case strings.Contains(err.Error(), "not found"):
		c.Unreferenced = true
	default:
		return c, err
	}
	return c, nil
}

// TestCollectChecksTheCurrentReferenceValues: reference values changed
// after the approval (an officer tightened them) stop the release; the
// guest must ask again and be judged by the new ones.
func TestCollectChecksTheCurrentReferenceValues(t *testing.T) {
	e := newEnv(t)
	var err error
	e.svc, err = New(Config{DB: e.db, Verifier: refVerifier{db: e.db}, Secrets: e.cust, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	img := "img_ref"
	if _, err := e.db.Exec(`INSERT INTO images(id, name, created_at) VALUES (?, 'ref', ?)`, img, store.Time(e.clk.Now())); err != nil {
		t.Fatal(err)
	}
	put := func(m byte) {
		t.Helper()
		meas := make(attest.Hex, attest.MeasurementSize)
		meas[0] = m
		if err := e.db.Tx(e.ctx, func(tx *sql.Tx) error {
			_, err := attest.PutReferenceTx(e.ctx, tx, e.clk.Now(), img, &attest.ReferenceValues{Measurements: []attest.Hex{meas}}, "officer:alice", "")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	vol := func(name string) string {
		id, _, secret, err := e.cust.CreateVolume(e.ctx, "officer:alice", img, name)
		if err != nil {
			t.Fatal(err)
		}
		e.secrets[id] = secret
		return id
	}
	put(7)
	a, id := e.approved(guest{vm: "vm-a", vol: vol("a"), chip: 1, meas: 7, launch: 1, tcbSNP: 20})
	rel, err := e.svc.Poll(e.ctx, id)
	e.wantReleased(a, rel, err, 1) // unchanged reference values: released

	_, id = e.approved(guest{vm: "vm-b", vol: vol("b"), chip: 2, meas: 7, launch: 2, tcbSNP: 20})
	put(9) // measurement 7 is no longer approved
	e.wantRefusedAtCollection(id, wire.CodeEvidenceInvalid, "reference values of image img_ref changed after the approval")
}
