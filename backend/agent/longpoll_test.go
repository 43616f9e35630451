package agent_test

import (
	"context"
	"testing"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

// TestApprovalReachesAWaitingGuestAtOnce: a guest waiting for an officer
// holds its secret as soon as the officer approves, not at its next poll.
// The agent's own poll interval is 60 s; the release must complete long
// before that (the console answers the agent's waiting poll when the
// request changes).
func TestApprovalReachesAWaitingGuestAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	dir := t.TempDir()
	con := startConsole(t, dir, true)
	defer con.stop()
	if _, err := con.db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_lp', 'lp', ?)`, store.Time(time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(con.db).Put(ctx, "img_lp", &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "officer:alice", "e2e"); err != nil {
		t.Fatal(err)
	}
	vol, gen, secret, err := con.cust.CreateVolume(ctx, "officer:alice", "img_lp", "lp-data")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	g, err := agentsim.NewGuest(attest.Genoa, "chip-lp")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan string, 16)
	req := agent.Request{VMID: "vm-lp-1", VolumeID: vol, Generation: gen, PollEvery: 60 * time.Second, MaxWait: 5 * time.Minute,
		Waiting: func(rel *wire.Release) { waiting <- rel.RequestID }}
	type result struct {
		res *agent.Result
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		res, err := con.client.Obtain(ctx, g, req)
		done <- result{res, err, time.Now()}
	}()
	var id string
	select {
	case id = <-waiting:
	case r := <-done:
		t.Fatalf("first boot did not wait for an officer: %+v %v", r.res, r.err)
	}
	// Let the agent settle into its wait before the officer decides.
	time.Sleep(500 * time.Millisecond)
	approved := time.Now()
	if _, err := con.svc.Approve(ctx, id, release.Approver{Name: "alice", AuthenticatedAt: time.Now()}, "long-poll"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("waiting guest after the approval (poll interval 60 s): %v", r.err)
	}
	defer r.res.Wipe()
	if r.res.Class != "first_boot" || len(r.res.Secret) == 0 {
		t.Fatalf("released: class %s, %d secret bytes", r.res.Class, len(r.res.Secret))
	}
	t.Logf("approval to secret held by the guest: %v", r.at.Sub(approved))
}
