package fleet

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
	"keyholder/internal/testclock"
)

func TestRecordStatusAndHistory(t *testing.T) {
	ctx := context.Background()
	clk := testclock.New(time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC))
	db, err := store.Open(ctx, storetest.Location(t, t.TempDir()), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := audit.NewLog(db)
	svc := New(db, log)
	rec := func(o Observation) bool {
		t.Helper()
		var ok bool
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			var err error
			ok, err = Record(ctx, tx, o)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	tcb := TCB{Bootloader: 1, SNP: 20}
	base := Observation{VMID: "vm-1", Kind: "release", ChipID: "c1", Measurement: "m1", ReportID: "r1", TCB: tcb, HeartbeatEvery: time.Minute}

	// Unauthenticated input for an unknown VM creates nothing.
	o := base
	o.At, o.Result, o.Status = clk.Now(), ResultDenied, Failing
	if rec(o) {
		t.Fatal("a refusal created a guest")
	}
	if _, err := svc.Get(ctx, "vm-1", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get: %v", err)
	}

	// A release creates the guest and approves its chip, measurement, launch.
	o = base
	o.At, o.Result, o.Status, o.Authentic, o.Released, o.Create, o.Generation = clk.Now(), ResultReleased, Verified, true, true, true, 1
	if !rec(o) {
		t.Fatal("release did not create the guest")
	}
	h, err := Lookup(ctx, db, "vm-1", "", "c1", "m1", "r2")
	if err != nil || !h.Exists || !h.EverReleased || !h.ChipApproved || !h.MeasurementSeen || h.ApprovedTCB == nil || *h.ApprovedTCB != tcb || h.ReportIDEarlierLaunch {
		t.Fatalf("lookup after release: %+v %v", h, err)
	}
	if h, _ := Lookup(ctx, db, "vm-1", "", "c2", "m2", "r1"); h.ChipApproved || h.MeasurementSeen {
		t.Fatalf("another chip or measurement counts as approved: %+v", h)
	}
	if h, _ := Lookup(ctx, db, "vm-2", "", "c1", "m1", "r1"); h.Exists || !h.ReportIDOtherVM {
		t.Fatalf("vm-2 presenting vm-1's launch: %+v", h)
	}

	// Verified until three heartbeat intervals pass, then stale.
	clk.Advance(3*time.Minute - time.Second)
	if g, _ := svc.Get(ctx, "vm-1", 0); g.Status != Verified {
		t.Fatalf("status = %s", g.Status)
	}
	clk.Advance(2 * time.Second)
	if g, _ := svc.Get(ctx, "vm-1", 0); g.Status != Stale {
		t.Fatalf("status after 3 intervals = %s", g.Status)
	}
	if gs, _ := svc.List(ctx, Filter{Status: Stale}); len(gs) != 1 {
		t.Fatalf("filter stale: %d", len(gs))
	}
	sum, _ := svc.Summary(ctx)
	if sum.Total != 1 || sum.ByStatus[Stale] != 1 || sum.ByStatus[Verified] != 0 {
		t.Fatalf("summary: %+v", sum)
	}

	// An unauthenticated refusal goes to history without changing status.
	o = base
	o.At, o.Result, o.Status, o.Code = clk.Now(), ResultDenied, "", "nonce_unknown"
	rec(o)
	if g, _ := svc.Get(ctx, "vm-1", 0); g.Status != Stale || len(g.History) != 2 || g.History[0].Code != "nonce_unknown" {
		t.Fatalf("after unauthenticated refusal: %s, %d rows", g.Status, len(g.History))
	}

	// An authentic refusal makes the guest failing; the list says why, in
	// words and as a code the console turns into a next step.
	o = base
	o.At, o.Result, o.Status, o.Authentic, o.Code, o.Message = clk.Now(), ResultFailing, Failing, true, "evidence_invalid", "measurement ab12… is not in the approved set (1 approved)"
	rec(o)
	if gs, _ := svc.List(ctx, Filter{}); len(gs) != 1 || gs[0].Status != Failing || gs[0].Reason != o.Message || gs[0].ReasonCode != "evidence_invalid" {
		t.Fatalf("failing guest: %+v", gs)
	}

	// The revocation ends the guest's release requests in its own
	// transaction: when that fails, the guest is not revoked either.
	failing := func(context.Context, *audit.Log, *sql.Tx, string, string, string, time.Time) error {
		return errors.New("requests stay open")
	}
	if err := svc.Revoke(ctx, "officer:a", "vm-1", "test", failing); err == nil {
		t.Fatal("revoked although its requests stayed open")
	}
	if g, _ := svc.Get(ctx, "vm-1", 0); g.Status == Revoked {
		t.Fatal("a failed revocation left the guest revoked")
	}
	if err := svc.Revoke(ctx, "officer:a", "vm-1", "test", nil); err == nil {
		t.Fatal("revoked without closing its requests")
	}
	// Revoked is sticky until reinstated.
	var closed []string
	closer := func(ctx context.Context, l *audit.Log, tx *sql.Tx, actor, vmID, reason string, now time.Time) error {
		if l != log {
			t.Errorf("closer gets another audit log than the fleet service's")
		}
		var revoked int
		if err := tx.QueryRowContext(ctx, `SELECT revoked FROM vms WHERE id = ?`, vmID).Scan(&revoked); err != nil || revoked != 1 {
			t.Errorf("closer runs outside the revocation's transaction: revoked=%d %v", revoked, err)
		}
		closed = append(closed, actor+" "+vmID+" "+reason)
		return nil
	}
	if err := svc.Revoke(ctx, "officer:a", "vm-1", "test", closer); err != nil {
		t.Fatal(err)
	}
	if len(closed) != 1 || closed[0] != "officer:a vm-1 test" {
		t.Fatalf("requests closed: %q", closed)
	}
	o = base
	o.At, o.Result, o.Status, o.Authentic = clk.Now(), ResultVerified, Verified, true
	rec(o)
	if g, _ := svc.Get(ctx, "vm-1", 0); g.Status != Revoked {
		t.Fatalf("a heartbeat un-revoked the guest: %s", g.Status)
	}
	if err := svc.Reinstate(ctx, "officer:a", "vm-1", "ok"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Revoke(ctx, "officer:a", "vm-nope", "", closer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
}

// recorder opens a fleet on a fresh database whose clock record moves by
// step before it records each observation.
func recorder(t *testing.T, step time.Duration) (db *store.DB, svc *Service, clk *testclock.Clock, record func(Observation)) {
	t.Helper()
	clk = testclock.New(time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC))
	db, err := store.Open(context.Background(), storetest.Location(t, t.TempDir()), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	record = func(o Observation) {
		t.Helper()
		clk.Advance(step)
		o.At = clk.Now()
		err := db.Tx(context.Background(), func(tx *sql.Tx) error { _, err := Record(context.Background(), tx, o); return err })
		if err != nil {
			t.Fatal(err)
		}
	}
	return db, New(db, audit.NewLog(db)), clk, record
}

func TestEvidenceIsKeptForAuthenticObservationsAndApprovedOnRelease(t *testing.T) {
	ctx := context.Background()
	db, svc, _, record := recorder(t, time.Second)
	first := json.RawMessage(`{"snp":{"measurement":"aa","policy":{"debug":false}},"tpm":null}`)
	second := json.RawMessage(`{"snp":{"measurement":"bb","policy":{"debug":true}},"tpm":null}`)
	base := Observation{VMID: "vm-1", Kind: "release", ChipID: "c1", Measurement: "m1", ReportID: "r1", Authentic: true, HeartbeatEvery: time.Minute}

	o := base
	o.Result, o.Status, o.Released, o.Create, o.Evidence = ResultReleased, Verified, true, true, first
	record(o)
	if d, err := svc.Get(ctx, "vm-1", 10); err != nil || string(d.Evidence) != string(first) || string(d.ApprovedEvidence) != string(first) {
		t.Fatalf("right after the release: evidence %s, approved %s, %v", d.Evidence, d.ApprovedEvidence, err)
	}
	// The released evidence is stored once.
	var stored int
	if err := db.QueryRow(`SELECT length(evidence) + length(approved_evidence) FROM vms WHERE id = 'vm-1'`).Scan(&stored); err != nil || stored > len(first)+1 {
		t.Fatalf("the release stored %d bytes of evidence for %d (%v)", stored, len(first), err)
	}
	o = base
	o.Result, o.Status, o.Evidence = ResultPending, Pending, second
	record(o)
	o = base
	o.Result, o.Status, o.Authentic, o.Evidence = ResultDenied, Failing, false, json.RawMessage(`{"snp":{"measurement":"forged"}}`)
	record(o)

	d, err := svc.Get(ctx, "vm-1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Evidence) != string(second) {
		t.Errorf("evidence = %s, want the newest authentic one %s", d.Evidence, second)
	}
	if string(d.ApprovedEvidence) != string(first) {
		t.Errorf("approved evidence = %s, want the released one %s", d.ApprovedEvidence, first)
	}
	prev, err := ApprovedEvidence(ctx, db, "vm-1")
	if err != nil || string(prev) != string(first) {
		t.Fatalf("ApprovedEvidence = %s, %v", prev, err)
	}
	if prev, err := ApprovedEvidence(ctx, db, "vm-nobody"); err != nil || prev != nil {
		t.Fatalf("ApprovedEvidence of an unknown VM = %s, %v", prev, err)
	}

	// A later release of another launch on another volume: the evidence,
	// the binding and the launch all move.
	third := json.RawMessage(`{"snp":{"measurement":"cc"},"tpm":null}`)
	if _, err := db.Exec(`INSERT INTO volumes(id, name, created_at) VALUES ('vol-2', 'second', '2026-04-01T08:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	o = base
	o.Result, o.Status, o.Released, o.Evidence, o.VolumeID, o.ReportID, o.Generation = ResultReleased, Verified, true, third, "vol-2", "r3", 2
	record(o)
	d, err = svc.Get(ctx, "vm-1", 10)
	if err != nil || string(d.Evidence) != string(third) || string(d.ApprovedEvidence) != string(third) || d.Status != Verified {
		t.Fatalf("after the second release: status %s, evidence %s, approved %s, %v", d.Status, d.Evidence, d.ApprovedEvidence, err)
	}
	h, err := Lookup(ctx, db, "vm-1", "vol-2", "c1", "m1", "r1")
	if err != nil || !h.VolumeReleased || !h.ReportIDEarlierLaunch {
		t.Fatalf("lookup after the second release: %+v, %v", h, err)
	}
	if d.VolumeID != "vol-2" || !reflect.DeepEqual(d.Volumes, []string{"vol-2"}) {
		t.Fatalf("after the release of vol-2: volume %q, volumes %v", d.VolumeID, d.Volumes)
	}
	// Another volume is not the VM's until it is released to it.
	if _, err := db.Exec(`INSERT INTO volumes(id, name, created_at) VALUES ('vol-3', 'third', '2026-04-01T08:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	record(Observation{VMID: "vm-1", Kind: "release", Result: ResultReleased, Status: Verified, Released: true, Authentic: true,
		VolumeID: "vol-3", ChipID: "c1", Measurement: "m1", ReportID: "r3", Generation: 1})
	if h, _ := Lookup(ctx, db, "vm-1", "vol-4", "c1", "m1", "r3"); h.VolumeReleased {
		t.Fatalf("a volume never released to vm-1 counts as its own: %+v", h)
	}
	if h, _ := Lookup(ctx, db, "vm-1", "vol-3", "c1", "m1", "r3"); !h.VolumeReleased {
		t.Fatalf("vol-3 released to vm-1 is not its own: %+v", h)
	}
	if h, _ := Lookup(ctx, db, "vm-2", "vol-3", "c1", "m1", "r9"); h.VolumeReleased {
		t.Fatalf("vm-1's volume counts as vm-2's: %+v", h)
	}
	if d, err := svc.Get(ctx, "vm-1", 10); err != nil || !reflect.DeepEqual(d.Volumes, []string{"vol-2", "vol-3"}) {
		t.Fatalf("volumes of vm-1 = %v, %v; want [vol-2 vol-3]", d.Volumes, err)
	}
	if h, _ := Lookup(ctx, db, "vm-2", "", "c1", "m1", "r3"); !h.ReportIDOtherVM {
		t.Fatalf("vm-2 presenting vm-1's current launch r3 is not noticed: %+v", h)
	}
	if h, _ := Lookup(ctx, db, "vm-2", "", "c1", "m1", "r1"); !h.ReportIDOtherVM {
		t.Fatalf("vm-2 presenting vm-1's earlier launch r1 is not noticed: %+v", h)
	}
	if h, _ := Lookup(ctx, db, "vm-1", "", "c1", "m1", "r3"); h.ReportIDOtherVM || h.ReportIDEarlierLaunch {
		t.Fatalf("vm-1's own current launch counts as another VM's or an earlier one: %+v", h)
	}
}

// Verified heartbeats that show the guest unchanged extend one history row;
// anything else starts a new one.
func TestHeartbeatRuns(t *testing.T) {
	ctx := context.Background()
	_, svc, clk, record := recorder(t, time.Minute)
	base := Observation{VMID: "vm-1", ChipID: "c1", Measurement: "m1", ReportID: "r1", TCB: TCB{SNP: 20}, Authentic: true, HeartbeatEvery: time.Minute}
	release := base
	release.Kind, release.Result, release.Status, release.Released, release.Create = "release", ResultReleased, Verified, true, true
	beat := base
	beat.Kind, beat.Result, beat.Status = "heartbeat", ResultVerified, Verified

	record(release) // 08:01
	start := clk.Now().Add(time.Minute)
	for range 3 {
		record(beat) // 08:02, 08:03, 08:04
	}
	newTCB := beat
	newTCB.TCB = TCB{SNP: 21}
	record(newTCB) // 08:05: a change is a row of its own
	record(newTCB) // 08:06
	failing := beat
	failing.Result, failing.Status, failing.Code = ResultFailing, Failing, "unexpected_event"
	record(failing) // 08:07
	record(newTCB)  // 08:08: after a failure, a new run

	d, err := svc.Get(ctx, "vm-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		result string
		count  int
		snp    uint8
		span   time.Duration
	}
	var got []row
	for _, a := range d.History {
		got = append(got, row{a.Result, a.Count, a.TCB.SNP, a.LastAt.Sub(a.At)})
	}
	want := []row{
		{ResultVerified, 1, 21, 0},
		{ResultFailing, 1, 20, 0},
		{ResultVerified, 2, 21, time.Minute},
		{ResultVerified, 3, 20, 2 * time.Minute},
		{ResultReleased, 1, 20, 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history (newest first) = %v, want %v", got, want)
	}
	if run := d.History[3]; !run.At.Equal(start) || !run.LastAt.Equal(start.Add(2*time.Minute)) {
		t.Fatalf("the first run spans %v–%v, want %v and two minutes", run.At, run.LastAt, start)
	}
	if d.LastEvidenceAt == nil || !d.LastEvidenceAt.Equal(clk.Now()) {
		t.Fatalf("the guest's last evidence is %v, want the newest heartbeat's %v", d.LastEvidenceAt, clk.Now())
	}
}

// TestListAttentionOrder: the first page in the attention order holds the
// guests that need an officer (failing, pending, stale), newest first
// within each status, before any verified one.
func TestListAttentionOrder(t *testing.T) {
	db, svc, clk, record := recorder(t, time.Second)
	_ = db
	for i, st := range []Status{Verified, Failing, Verified, Pending, Verified, Failing, Verified} {
		o := Observation{VMID: fmt.Sprintf("vm-%d", i), Kind: "release", ChipID: "c", Measurement: "m", ReportID: fmt.Sprintf("r%d", i),
			Result: ResultReleased, Status: st, Authentic: true, Create: true, HeartbeatEvery: time.Hour}
		if st == Failing {
			o.Result = ResultFailing
		}
		record(o)
	}
	// vm-0 goes stale: every other verified guest heartbeats later.
	clk.Advance(3*time.Hour - 5*time.Second)
	for _, id := range []string{"vm-2", "vm-4", "vm-6"} {
		record(Observation{VMID: id, Kind: "heartbeat", ChipID: "c", Measurement: "m", ReportID: "r" + id[3:], Result: ResultVerified, Status: Verified, Authentic: true, HeartbeatEvery: time.Hour})
	}
	clk.Advance(10 * time.Second)
	gs, err := svc.List(context.Background(), Filter{Order: OrderAttention, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, g.ID+":"+string(g.Status))
	}
	want := []string{"vm-5:failing", "vm-1:failing", "vm-3:pending", "vm-0:stale", "vm-6:verified"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attention order = %v, want %v", got, want)
	}
}

// TestListSlicesByID: read in slices (OrderID, Limit, After), the fleet
// comes back whole, each guest once, even when guests heartbeat (and move
// in every other order) between two slices; After without OrderID and a
// negative limit are refused.
func TestListSlicesByID(t *testing.T) {
	_, svc, _, record := recorder(t, time.Second)
	ctx := context.Background()
	obs := func(id, kind string) Observation {
		return Observation{VMID: id, Kind: kind, ChipID: "c", Measurement: "m", ReportID: "r-" + id + kind, Result: ResultReleased,
			Status: Verified, Authentic: true, Create: kind == "release", HeartbeatEvery: time.Hour}
	}
	var want []string
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("vm-%d", i)
		record(obs(id, "release"))
		want = append(want, id)
	}
	var got []string
	after := ""
	for n := 0; ; n++ {
		gs, err := svc.List(ctx, Filter{Order: OrderID, Limit: 3, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) == 0 {
			break
		}
		for _, g := range gs {
			got = append(got, g.ID)
		}
		after = gs[len(gs)-1].ID
		if n == 0 {
			// The last guests move to the front of the default order.
			hb := obs("vm-6", "heartbeat")
			hb.Result = ResultVerified
			record(hb)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("slices = %v, want %v", got, want)
	}
	for _, f := range []Filter{{After: "vm-1"}, {Order: OrderAttention, After: "vm-1", Limit: 2}, {Limit: -1}} {
		if _, err := svc.List(ctx, f); !errors.Is(err, ErrInvalidPage) {
			t.Errorf("List(%+v) = %v, want ErrInvalidPage", f, err)
		}
	}
}

// TestGuestsByID: one query returns the named guests that exist (a pushed
// batch), and none for no IDs.
func TestGuestsByID(t *testing.T) {
	_, svc, _, record := recorder(t, time.Second)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		record(Observation{VMID: fmt.Sprintf("vm-%d", i), Kind: "release", ChipID: "c", Measurement: "m", ReportID: fmt.Sprintf("r%d", i),
			Result: ResultReleased, Status: Verified, Authentic: true, Create: true, HeartbeatEvery: time.Hour})
	}
	gs, err := svc.Guests(ctx, []string{"vm-3", "vm-nope", "vm-1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, g.ID)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[vm-1 vm-3]" {
		t.Fatalf("Guests = %v, want [vm-1 vm-3]", got)
	}
	if gs, err := svc.Guests(ctx, nil); err != nil || len(gs) != 0 {
		t.Fatalf("Guests(nil) = %v, %v", gs, err)
	}
}

// TestRecordOfAKnownGuestSendsItsStatementsTogether: an observation whose
// caller knows the guest's row exists (Exists: its UPDATE goes out with
// the rest), and for a release on a recorded chip and measurement that
// those are (ChipKnown, MeasurementKnown: their rows are left alone),
// leaves exactly what the same observation without them leaves:
// the guest's row, its history, launches, chips, measurements and
// volumes; for a release, a heartbeat that extends a run, and a refusal.
func TestRecordOfAKnownGuestSendsItsStatementsTogether(t *testing.T) {
	db, _, _, record := recorder(t, time.Second)
	ev := json.RawMessage(`{"snp":{"measurement":"aa"}}`)
	for _, vm := range []string{"vm-a", "vm-b"} {
		record(Observation{VMID: vm, Kind: "release", Result: ResultReleased, Status: Verified, Released: true, Create: true,
			ChipID: "c1", Measurement: "m1", ReportID: "r1-" + vm, Authentic: true, Generation: 1, HeartbeatEvery: time.Minute, Evidence: ev})
	}
	steps := []Observation{
		{Kind: "release", Result: ResultReleased, Status: Verified, Released: true, Create: true,
			ChipID: "c2", Measurement: "m2", ReportID: "r2", Authentic: true, Generation: 2, HeartbeatEvery: time.Minute, Evidence: ev},
		{Kind: "heartbeat", Result: ResultVerified, Status: Verified, ChipID: "c2", Measurement: "m2", Authentic: true, HeartbeatEvery: time.Minute},
		{Kind: "heartbeat", Result: ResultVerified, Status: Verified, ChipID: "c2", Measurement: "m2", Authentic: true, HeartbeatEvery: time.Minute},
		{Kind: "release", Result: ResultDenied, Status: Failing, Code: "measurement_mismatch", Message: "no", ChipID: "c2", Measurement: "m3", Authentic: true},
		// Released again on the chip and measurement recorded above.
		{Kind: "release", Result: ResultReleased, Status: Verified, Released: true, Create: true,
			ChipID: "c2", Measurement: "m2", ReportID: "r3", Authentic: true, Generation: 2, HeartbeatEvery: time.Minute, Evidence: ev},
	}
	for i, o := range steps {
		a, b := o, o
		a.VMID, a.Exists = "vm-a", true
		a.ChipKnown, a.MeasurementKnown = i == len(steps)-1, i == len(steps)-1
		b.VMID = "vm-b"
		if a.ReportID != "" {
			a.ReportID, b.ReportID = o.ReportID+"-a", o.ReportID+"-b"
		}
		record(a)
		record(b)
	}
	state := func(vm string) string {
		t.Helper()
		var out []string
		for _, q := range []string{
			`SELECT status || '|' || status_reason || '|' || chip_id || '|' || measurement || '|' || generation || '|' || COALESCE(volume_id, '') || '|' || approved_evidence || '|' || evidence FROM vms WHERE id = ?`,
			`SELECT COUNT(*) || '|' || COALESCE(SUM(count), 0) FROM attestations WHERE vm_id = ?`,
			`SELECT COUNT(*) FROM vm_launches WHERE vm_id = ?`,
			`SELECT COUNT(*) FROM vm_chips WHERE vm_id = ?`,
			`SELECT COUNT(*) FROM vm_measurements WHERE vm_id = ?`,
			`SELECT COUNT(*) || '|' || COALESCE(MAX(generation), 0) FROM vm_volumes WHERE vm_id = ?`,
		} {
			var s string
			if err := db.QueryRow(q, vm).Scan(&s); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			out = append(out, s)
		}
		return fmt.Sprint(out)
	}
	if a, b := state("vm-a"), state("vm-b"); a != b {
		t.Fatalf("with Exists: %s\nwithout:     %s", a, b)
	}
}
