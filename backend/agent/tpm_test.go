package agent_test

import (
	"context"
	"testing"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/sim/simtpm"
	"keyholder/backend/store"
)

// tpmGuest is a simulated guest with a simulated vTPM (go-tpm-tools'
// simulator): its quote is over REPORT_DATA and, when bind is set, its
// attestation key is bound into the transcript as the real agent's VTPM does.
type tpmGuest struct {
	*agentsim.Guest
	seed int64
	ak   []byte
	bind bool
}

func newTPMGuest(t *testing.T, chip string, seed int64, bind bool) *tpmGuest {
	t.Helper()
	g, err := agentsim.NewGuest(attest.Genoa, chip)
	if err != nil {
		t.Fatal(err)
	}
	att, err := simtpm.Attestation(simtpm.Options{Seed: seed}, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &tpmGuest{Guest: g, seed: seed, ak: (&attest.Evidence{TPM: att}).AKDigest(), bind: bind}
}

func (g *tpmGuest) Evidence(ctx context.Context, rd [64]byte) (wire.Evidence, error) {
	ev, err := g.Guest.Evidence(ctx, rd)
	if err != nil {
		return ev, err
	}
	raw, err := simtpm.Attestation(simtpm.Options{Seed: g.seed}, rd[:])
	if err != nil {
		return ev, err
	}
	ev.TPM, err = agent.FitTPMAttestation(raw) // as the agent's VTPM does
	return ev, err
}

// boundTPMGuest binds its AK (agent.AKBinder); tpmGuest alone does not.
type boundTPMGuest struct{ *tpmGuest }

func (g boundTPMGuest) AKDigest(context.Context) ([]byte, error) { return g.ak, nil }

func TestVTPMEvidence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	con := startConsole(t, dir, true)
	defer con.stop()
	if _, err := con.db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_tpm', 'tpm', ?)`, store.Time(time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(con.db).Put(ctx, "img_tpm", &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement},
		TPM: &attest.TPMReference{Required: true}}, "officer:alice", ""); err != nil {
		t.Fatal(err)
	}
	vol, _, secret, err := con.cust.CreateVolume(ctx, "officer:alice", "img_tpm", "tpm-data")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)

	// Bound: the vTPM quote is trusted through the report; released after
	// the first-boot approval.
	bound := boundTPMGuest{newTPMGuest(t, "tpm-chip", 7, true)}
	res, err := con.client.Obtain(ctx, bound, agent.Request{VMID: "vm-tpm", VolumeID: vol, PollEvery: 10 * time.Millisecond, Waiting: con.approveAll(t)})
	if err != nil || res.Class != "first_boot" {
		t.Fatalf("vTPM guest: %+v %v", res, err)
	}

	// Not bound: the transcript lacks the AK digest the console expects.
	unbound := newTPMGuest(t, "tpm-chip", 7, false)
	unbound.NewLaunch()
	if _, err := con.client.Obtain(ctx, unbound, agent.Request{VMID: "vm-tpm", VolumeID: vol}); agent.Code(err) != wire.CodeReportDataMismatch {
		t.Fatalf("unbound vTPM key: %v", err)
	}

	// No vTPM where the reference values require one.
	plain, _ := agentsim.NewGuest(attest.Genoa, "tpm-chip")
	if _, err := con.client.Obtain(ctx, plain, agent.Request{VMID: "vm-tpm", VolumeID: vol}); agent.Code(err) != wire.CodeEvidenceInvalid {
		t.Fatalf("missing vTPM: %v", err)
	}
}
