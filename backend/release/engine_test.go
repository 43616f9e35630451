package release

import (
	"bytes"
	"context"
	"crypto/hpke"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
	"keyholder/internal/testclock"
)

// fakeVerifier reads claims from fixed offsets of a synthetic report (the
// offsets of the real SEV-SNP layout). Byte 0x30 = 1 marks a forged
// signature, 0x31 = 1 an unapproved measurement (authentic but refused).
// Real evidence is tested end to end with the simulated AMD root.
type fakeVerifier struct{}

const (
	offReportData = 0x50
	offMeasure    = 0x90
	offReportID   = 0x140
	offTCB        = 0x180
	offChip       = 0x1A0
)

func (fakeVerifier) AKDigest(ev wire.Evidence) []byte { return nil }

func (fakeVerifier) Verify(ctx context.Context, ev wire.Evidence, image ImageRef, expected [64]byte) (Claims, error) {
	r := ev.Report
	var c Claims
	copy(c.ReportData[:], r[offReportData:offReportData+64])
	c.Measurement = hex.EncodeToString(r[offMeasure : offMeasure+48])
	c.ReportID = hex.EncodeToString(r[offReportID : offReportID+32])
	c.ChipID = hex.EncodeToString(r[offChip : offChip+64])
	c.TCB = fleet.TCB{Bootloader: r[offTCB], TEE: r[offTCB+1], SNP: r[offTCB+6], Microcode: r[offTCB+7]}
	c.Debug = r[0x08]&1 != 0
	c.Product = "Genoa"
	c.Simulated = true
	c.Evidence = json.RawMessage(fmt.Sprintf(`{"snp":{"chip_id":%q,"measurement":%q},"tpm":null}`, c.ChipID, c.Measurement))
	switch {
	case r[0x30] == 1:
		c.Reasons = []wire.Reason{{Code: "signature", Message: "the report's signature does not verify"}}
	case r[0x31] == 1:
		c.Authentic = true
		c.Reasons = []wire.Reason{{Code: "measurement", Message: "measurement is not approved"}}
	default:
		c.Authentic, c.Verified = true, true
	}
	return c, nil
}

type guest struct {
	vm, vol    string
	chip, meas byte
	launch     byte
	tcbSNP     byte
	debug      bool
	forged     bool
	unapproved bool
}

func (g guest) report(rd [64]byte) []byte {
	r := make([]byte, wire.SnpReportSize)
	copy(r[offReportData:], rd[:])
	r[offMeasure] = g.meas
	r[offReportID] = g.launch
	r[offTCB+6] = g.tcbSNP
	r[offChip] = g.chip
	if g.debug {
		r[0x08] = 1
	}
	if g.forged {
		r[0x30] = 1
	}
	if g.unapproved {
		r[0x31] = 1
	}
	return r
}

type testEnv struct {
	t       testing.TB
	ctx     context.Context
	path    string
	db      *store.DB
	cust    *custody.Service
	svc     *Service
	clk     *testclock.Clock
	events  []Event
	secrets map[string][]byte // volume -> generation-1 secret (test only)
}

var testKDF = custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	e := &testEnv{t: t, ctx: context.Background(), path: storetest.Location(t, t.TempDir()), secrets: map[string][]byte{},
		clk: testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	e.open()
	if _, err := e.cust.Init(e.ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	return e
}

func (e *testEnv) open() {
	db, err := store.Open(e.ctx, e.path, store.Options{Exclusive: true, Now: e.clk.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	e.cust = custody.New(db, custody.Options{KDF: testKDF, Now: e.clk.Now})
	e.svc, err = New(Config{DB: db, Verifier: fakeVerifier{}, Secrets: e.cust, Now: e.clk.Now, Notify: func(ev Event) { e.events = append(e.events, ev) }})
	if err != nil {
		e.t.Fatal(err)
	}
}

// restart closes the console and opens it again (locked key service, new
// nonces), then unlocks it.
func (e *testEnv) restart() {
	e.cust.Lock()
	e.db.Close()
	e.open()
	if _, err := e.cust.Unlock(e.ctx, "alice", []byte("correct horse battery")); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) volume(name string) string {
	id, gen, secret, err := e.cust.CreateVolume(e.ctx, "officer:alice", "", name)
	if err != nil || gen != 1 {
		e.t.Fatal(err)
	}
	e.secrets[id] = secret
	return id
}

type attempt struct {
	req *wire.ReleaseRequest
	key hpke.PrivateKey
}

func (e *testEnv) request(g guest, purpose wire.Purpose, gen int) attempt {
	e.t.Helper()
	ch, err := e.svc.Challenge()
	if err != nil {
		e.t.Fatal(err)
	}
	k, pub, err := wire.NewKeyPair()
	if err != nil {
		e.t.Fatal(err)
	}
	req := &wire.ReleaseRequest{Version: wire.Version, VMID: g.vm, VolumeID: g.vol, Purpose: purpose, Generation: gen, Nonce: ch.Nonce, HPKEPublicKey: pub}
	rd, err := wire.Transcript(req.Binding(nil))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Evidence = wire.Evidence{Report: g.report(rd)}
	return attempt{key: k, req: req}
}

func code(err error) wire.Code {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	if err != nil {
		return "unexpected:" + wire.Code(err.Error())
	}
	return ""
}

func (e *testEnv) wantReleased(a attempt, rel *wire.Release, err error, gen int) {
	e.t.Helper()
	if err != nil || rel.Status != wire.StatusReleased {
		e.t.Fatalf("want released, got %+v, %v", rel, err)
	}
	secret, err := wire.Open(a.key, rel.RequestID, a.req.VolumeID, uint32(gen), rel.Sealed)
	if err != nil {
		e.t.Fatalf("open sealed secret: %v", err)
	}
	if gen == 1 && !bytes.Equal(secret, e.secrets[a.req.VolumeID]) {
		e.t.Fatal("released secret is not the volume's")
	}
}

func (e *testEnv) status(vm string) fleet.Status {
	d, err := fleet.New(e.db, e.cust.AuditLog()).Get(e.ctx, vm, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Status
}

func (e *testEnv) approver(name string) Approver {
	return Approver{Name: name, AuthenticatedAt: e.clk.Now()}
}

func TestReleaseLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	vol1, vol2 := e.volume("web-data"), e.volume("db-data")
	g1 := guest{vm: "vm-web", vol: vol1, chip: 1, meas: 7, launch: 1, tcbSNP: 20}
	g2 := guest{vm: "vm-db", vol: vol2, chip: 2, meas: 7, launch: 2, tcbSNP: 20}

	// First boot: pending, approved by an officer, collected once.
	a := e.request(g1, wire.PurposeBoot, 0)
	rel, err := e.svc.Release(ctx, a.req)
	if err != nil || rel.Status != wire.StatusPending || rel.Class != string(ClassFirstBoot) {
		t.Fatalf("first boot: %+v %v", rel, err)
	}
	if st := e.status("vm-web"); st != fleet.Pending {
		t.Fatalf("status after first boot request = %s", st)
	}
	if p, err := e.svc.Poll(ctx, rel.RequestID); err != nil || p.Status != wire.StatusPending {
		t.Fatalf("poll pending: %+v %v", p, err)
	}
	if _, err := e.svc.Approve(ctx, rel.RequestID, Approver{Name: "alice", AuthenticatedAt: e.clk.Now().Add(-10 * time.Minute)}, "ok"); !errors.Is(err, ErrReauthenticate) {
		t.Fatalf("stale approver: err = %v", err)
	}
	req, err := e.svc.Approve(ctx, rel.RequestID, e.approver("alice"), "first boot of web")
	if err != nil || req.Status != StatusApproved || len(req.Approvals) != 1 || req.Approvals[0].EvidenceHash != req.EvidenceHash {
		t.Fatalf("approve: %+v %v", req, err)
	}
	got, err := e.svc.Poll(ctx, rel.RequestID)
	e.wantReleased(a, got, err, 1)
	if _, err := e.svc.Poll(ctx, rel.RequestID); code(err) != wire.CodeRequestUnknown {
		t.Fatalf("second collection: %v", err)
	}
	if st := e.status("vm-web"); st != fleet.Verified {
		t.Fatalf("status after release = %s", st)
	}

	// Routine reboot (new launch, same chip, measurement, TCB): released at once.
	g1.launch = 3
	a = e.request(g1, wire.PurposeBoot, 0)
	rel, err = e.svc.Release(ctx, a.req)
	e.wantReleased(a, rel, err, 1)
	if rel.Class != string(ClassRoutine) {
		t.Fatalf("class = %s", rel.Class)
	}

	// Set up vm-db as a second released guest.
	b := e.request(g2, wire.PurposeBoot, 0)
	rel, _ = e.svc.Release(ctx, b.req)
	e.svc.Approve(ctx, rel.RequestID, e.approver("alice"), "")
	got, err = e.svc.Poll(ctx, rel.RequestID)
	e.wantReleased(b, got, err, 1)

	// Refusals, each with its reason code.
	replay := a.req // the routine request, nonce used
	reused := e.request(g1, wire.PurposeBoot, 0)
	reused.req.Evidence = a.req.Evidence // fresh nonce, old report
	unbound := e.request(g1, wire.PurposeBoot, 0)
	_, otherPub, _ := wire.NewKeyPair()
	unbound.req.HPKEPublicKey = otherPub // report binds a different key
	otherVM := e.request(guest{vm: "vm-web", vol: vol1, chip: 2, meas: 7, launch: 2, tcbSNP: 20}, wire.PurposeBoot, 0)
	wrongVol := e.request(guest{vm: "vm-db", vol: vol1, chip: 2, meas: 7, launch: 2, tcbSNP: 20}, wire.PurposeBoot, 0)
	forged := e.request(guest{vm: "vm-web", vol: vol1, chip: 1, meas: 7, launch: 9, tcbSNP: 20, forged: true}, wire.PurposeBoot, 0)
	debug := e.request(guest{vm: "vm-web", vol: vol1, chip: 1, meas: 7, launch: 10, tcbSNP: 20, debug: true}, wire.PurposeBoot, 0)
	future := e.request(guest{vm: "vm-web", vol: vol1, chip: 1, meas: 7, launch: 11, tcbSNP: 20}, wire.PurposeBoot, 5)
	unknownVol := e.request(guest{vm: "vm-x", vol: "vol_nope", chip: 5, meas: 7, launch: 12}, wire.PurposeBoot, 0)
	cases := []struct {
		name string
		a    attempt
		want wire.Code
	}{
		{"replayed nonce", attempt{req: replay}, wire.CodeNonceUnknown},
		{"reused report with a fresh nonce", reused, wire.CodeReportDataMismatch},
		{"HPKE key not bound to the report", unbound, wire.CodeReportDataMismatch},
		{"evidence from another VM's launch", otherVM, wire.CodeReportOtherVM},
		{"forged signature", forged, wire.CodeEvidenceInvalid},
		{"debug policy", debug, wire.CodePolicyDebug},
		{"generation that does not exist", future, wire.CodeGenerationUnknown},
		{"unknown volume", unknownVol, wire.CodeVolumeUnknown},
	}
	for _, c := range cases {
		rel, err := e.svc.Release(ctx, c.a.req)
		if code(err) != c.want {
			t.Errorf("%s: got %+v, %v; want %s", c.name, rel, err, c.want)
		}
	}
	// A VM asking for a volume released to another VM (a re-created VM, or
	// one presenting another's disk) is no routine: an officer decides,
	// told who holds the volume. This one refuses.
	rel, err = e.svc.Release(ctx, wrongVol.req)
	if err != nil || rel.Status != wire.StatusPending || rel.Class != string(ClassFirstBoot) {
		t.Fatalf("VM asks for another VM's volume: got %+v, %v; want pending first_boot", rel, err)
	}
	if r, err := GetRequest(ctx, e.db, rel.RequestID); err != nil || !strings.Contains(string(r.Summary), `"volume_released_to":["vm-web"]`) {
		t.Fatalf("summary of a request for another VM's volume: %s %v", r.Summary, err)
	}
	if _, err := e.svc.Deny(ctx, rel.RequestID, e.approver("alice"), "not this VM's disk"); err != nil {
		t.Fatal(err)
	}
	// The debug launch is authentic: the VM is failing now. The forged one
	// did not change what the fleet believes.
	if st := e.status("vm-web"); st != fleet.Failing {
		t.Errorf("status after debug refusal = %s", st)
	}
	if _, err := fleet.New(e.db, e.cust.AuditLog()).Get(ctx, "vm-x", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unauthenticated request for an unknown VM created a row: %v", err)
	}

	// Migration: a new chip waits for approval, then completes.
	g1.chip, g1.launch = 9, 20
	a = e.request(g1, wire.PurposeBoot, 0)
	rel, err = e.svc.Release(ctx, a.req)
	if err != nil || rel.Status != wire.StatusPending || rel.Class != string(ClassMigration) {
		t.Fatalf("migration: %+v %v", rel, err)
	}
	migration := rel.RequestID

	// The console restarts with the request pending: it survives, the
	// old nonces do not.
	e.restart()
	if _, err := e.svc.Release(ctx, e.requestNoChallenge(g1)); code(err) != wire.CodeNonceUnknown {
		t.Fatalf("nonce from before the restart: %v", err)
	}
	pending, err := ListRequests(ctx, e.db, StatusPending)
	if err != nil || len(pending) != 1 || pending[0].ID != migration {
		t.Fatalf("pending after restart: %+v %v", pending, err)
	}
	// The officer's card compares this request's evidence with the last released launch's.
	var sum struct {
		Evidence struct {
			SNP struct {
				ChipID string `json:"chip_id"`
			} `json:"snp"`
		} `json:"evidence"`
		Previous *struct {
			SNP struct {
				ChipID string `json:"chip_id"`
			} `json:"snp"`
		} `json:"previous"`
	}
	if err := json.Unmarshal(pending[0].Summary, &sum); err != nil || sum.Previous == nil ||
		sum.Evidence.SNP.ChipID == "" || sum.Previous.SNP.ChipID == "" || sum.Evidence.SNP.ChipID == sum.Previous.SNP.ChipID {
		t.Fatalf("migration summary lacks both sides of the diff: %s (%v)", pending[0].Summary, err)
	}
	if _, err := e.svc.Approve(ctx, migration, e.approver("alice"), "planned move"); err != nil {
		t.Fatal(err)
	}
	got, err = e.svc.Poll(ctx, migration)
	e.wantReleased(a, got, err, 1)

	// Heartbeats: routine keeps the guest verified; a new chip fails it.
	g1.launch = 21
	hb := e.request(g1, wire.PurposeHeartbeat, 0)
	if h, err := e.svc.Heartbeat(ctx, hb.req); err != nil || h.Status != "verified" || h.NextIn != 60 {
		t.Fatalf("heartbeat: %+v %v", h, err)
	}
	g1b := g1
	g1b.chip = 33
	hb = e.request(g1b, wire.PurposeHeartbeat, 0)
	if _, err := e.svc.Heartbeat(ctx, hb.req); code(err) != wire.CodeUnexpectedEvent {
		t.Fatalf("heartbeat from a new chip: %v", err)
	}
	if st := e.status("vm-web"); st != fleet.Failing {
		t.Fatalf("status after odd heartbeat = %s", st)
	}

	// Stale: no heartbeat for three intervals.
	g2.launch = 30
	b = e.request(g2, wire.PurposeHeartbeat, 0)
	if _, err := e.svc.Heartbeat(ctx, b.req); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(179 * time.Second)
	if st := e.status("vm-db"); st != fleet.Verified {
		t.Fatalf("status before 3 intervals = %s", st)
	}
	e.clk.Advance(2 * time.Second)
	if st := e.status("vm-db"); st != fleet.Stale {
		t.Fatalf("status after 3 intervals = %s", st)
	}

	// Revoked VM.
	if err := fleet.New(e.db, e.cust.AuditLog()).Revoke(ctx, "officer:alice", "vm-db", "decommissioned", DenyRequestsOfRevokedTx); err != nil {
		t.Fatal(err)
	}
	b = e.request(g2, wire.PurposeBoot, 0)
	if _, err := e.svc.Release(ctx, b.req); code(err) != wire.CodeVMRevoked {
		t.Fatalf("revoked VM: %v", err)
	}
	if st := e.status("vm-db"); st != fleet.Revoked {
		t.Fatalf("revoked VM status = %s", st)
	}

	// Every decision is in the audit log, and the chain verifies.
	pub, _, err := e.cust.AuditPublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(ctx, e.db, pub); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	entries, _ := audit.List(ctx, e.db, audit.Query{Limit: 5000})
	counts := map[string]int{}
	for _, en := range entries {
		counts[en.Action+"/"+en.Decision]++
	}
	// released: first boot, routine, vm-db, migration; pending: 4; denied:
	// the seven refusals that showed a valid challenge and the revoked VM.
	// (The replayed and the pre-restart nonce are junk: the release API
	// audits junk in aggregate, per source network.)
	for k, want := range map[string]int{"release/released": 4, "release/pending": 4, "release/denied": 8, "release.approve/approved": 3, "heartbeat/failing": 1} {
		if counts[k] != want {
			t.Errorf("audit %s: %d entries, want %d (all: %v)", k, counts[k], want, counts)
		}
	}

	// No release secret lies in the database files in plaintext.
	e.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(e.path + suffix)
		if err != nil {
			continue
		}
		for vol, s := range e.secrets {
			if bytes.Contains(b, s) {
				t.Errorf("secret of %s found in plaintext in %s", vol, filepath.Base(e.path+suffix))
			}
		}
	}
}

// requestNoChallenge builds a request with a nonce the console never issued.
func (e *testEnv) requestNoChallenge(g guest) *wire.ReleaseRequest {
	nonce := bytes.Repeat([]byte{7}, wire.NonceSize)
	_, pub, _ := wire.NewKeyPair()
	req := &wire.ReleaseRequest{Version: wire.Version, VMID: g.vm, VolumeID: g.vol, Purpose: wire.PurposeBoot, Nonce: nonce, HPKEPublicKey: pub}
	rd, _ := wire.Transcript(req.Binding(nil))
	req.Evidence = wire.Evidence{Report: g.report(rd)}
	return req
}

func (e *testEnv) released(g guest) {
	e.t.Helper()
	a := e.request(g, wire.PurposeBoot, 0)
	rel, err := e.svc.Release(e.ctx, a.req)
	if err != nil {
		e.t.Fatal(err)
	}
	if rel.Status == wire.StatusPending {
		if _, err := e.svc.Approve(e.ctx, rel.RequestID, e.approver("alice"), ""); err != nil {
			e.t.Fatal(err)
		}
		rel, err = e.svc.Poll(e.ctx, rel.RequestID)
	}
	e.wantReleased(a, rel, err, 1)
}

func TestApprovalRules(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	if _, err := e.cust.AddOfficer(ctx, "alice", "bob", custody.RoleApprover, []byte("another long passphrase")); err != nil {
		t.Fatal(err)
	}
	vol := e.volume("data")
	g := guest{vm: "vm-1", vol: vol, chip: 1, meas: 1, launch: 1}
	e.released(g)

	// A guest that asks again supersedes its open request.
	g.chip, g.launch = 8, 80
	r1, _ := e.svc.Release(ctx, e.request(g, wire.PurposeBoot, 0).req)
	g.launch = 81
	r2, _ := e.svc.Release(ctx, e.request(g, wire.PurposeBoot, 0).req)
	if _, err := e.svc.Approve(ctx, r1.RequestID, e.approver("alice"), ""); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approve a superseded request: %v", err)
	}
	if p, _ := ListRequests(ctx, e.db, StatusPending); len(p) != 1 || p[0].ID != r2.RequestID {
		t.Fatalf("pending after a second request: %+v", p)
	}
	e.svc.Deny(ctx, r2.RequestID, e.approver("alice"), "test over")

	// A request past its deadline ran out of time: the guest asking again
	// does not rewrite that as "superseded" (the console expires it as
	// undecided, and it stays in the officers' view as expired).
	g.launch = 82
	r3, _ := e.svc.Release(ctx, e.request(g, wire.PurposeBoot, 0).req)
	old, _ := GetRequest(ctx, e.db, r3.RequestID)
	e.clk.Advance(old.ExpiresAt.Sub(e.clk.Now()) + time.Second)
	g.launch = 83
	r4, _ := e.svc.Release(ctx, e.request(g, wire.PurposeBoot, 0).req)
	if _, err := e.svc.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := GetRequest(ctx, e.db, r3.RequestID); got.Status != StatusExpired || strings.HasPrefix(got.Reason, "superseded") {
		t.Fatalf("a request past its deadline when its guest asked again: %s %q", got.Status, got.Reason)
	}
	e.svc.Deny(ctx, r4.RequestID, e.approver("alice"), "test over")

	// Two of N for migrations.
	if err := SetPolicy(ctx, e.cust.AuditLog(), "officer:alice", "", &Policy{Approvers: map[Class]int{ClassMigration: 2}}); err != nil {
		t.Fatal(err)
	}
	g.chip, g.launch = 2, 2
	a := e.request(g, wire.PurposeBoot, 0)
	rel, err := e.svc.Release(ctx, a.req)
	if err != nil || rel.Status != wire.StatusPending {
		t.Fatalf("%+v %v", rel, err)
	}
	id := rel.RequestID
	r, err := e.svc.Approve(ctx, id, e.approver("alice"), "")
	if err != nil || r.Status != StatusPending || r.ApprovalsNeeded != 2 {
		t.Fatalf("first of two: %+v %v", r, err)
	}
	if _, err := e.svc.Poll(ctx, id); err != nil {
		t.Fatalf("poll with one approval of two: %v", err)
	}
	if _, err := e.svc.Approve(ctx, id, e.approver("alice"), ""); !errors.Is(err, ErrAlreadyApproved) {
		t.Fatalf("same officer twice: %v", err)
	}
	if r, err = e.svc.Approve(ctx, id, e.approver("bob"), "agreed"); err != nil || r.Status != StatusApproved {
		t.Fatalf("second of two: %+v %v", r, err)
	}
	got, err := e.svc.Poll(ctx, id)
	e.wantReleased(a, got, err, 1)

	// Denial is final.
	g.chip, g.launch = 3, 3
	a = e.request(g, wire.PurposeBoot, 0)
	rel, _ = e.svc.Release(ctx, a.req)
	// A denial says why: a blank reason is refused and changes nothing.
	for _, blank := range []string{"", "  \n\t"} {
		if _, err := e.svc.Deny(ctx, rel.RequestID, e.approver("bob"), blank); !errors.Is(err, ErrReasonRequired) {
			t.Fatalf("deny with reason %q: %v, want ErrReasonRequired", blank, err)
		}
	}
	if r, err := GetRequest(ctx, e.db, rel.RequestID); err != nil || r.Status != StatusPending {
		t.Fatalf("after a refused denial: %+v %v", r, err)
	}
	if _, err := e.svc.Deny(ctx, rel.RequestID, e.approver("bob"), "unexpected host"); err != nil {
		t.Fatal(err)
	}
	if es, err := audit.List(ctx, e.db, audit.Query{Action: "release.deny", Limit: 1}); err != nil || len(es) != 1 ||
		es[0].Subject != rel.RequestID || !strings.HasSuffix(es[0].Reason, ": unexpected host") {
		t.Fatalf("the denial's audit entry does not carry the reason: %+v %v", es, err)
	}
	if _, err := e.svc.Poll(ctx, rel.RequestID); code(err) != wire.CodeDeniedByOfficer {
		t.Fatalf("poll denied: %v", err)
	}
	if _, err := e.svc.Approve(ctx, rel.RequestID, e.approver("alice"), ""); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approve after deny: %v", err)
	}
	if st := e.status("vm-1"); st != fleet.Failing {
		t.Fatalf("status after denial = %s", st)
	}

	// Expiry: no approval within 15 minutes.
	g.chip, g.launch = 4, 4
	a = e.request(g, wire.PurposeBoot, 0)
	rel, _ = e.svc.Release(ctx, a.req)
	e.clk.Advance(15 * time.Minute)
	if _, err := e.svc.Approve(ctx, rel.RequestID, e.approver("alice"), ""); !errors.Is(err, ErrExpired) {
		t.Fatalf("approve after expiry: %v", err)
	}
	if _, err := e.svc.Poll(ctx, rel.RequestID); code(err) != wire.CodeRequestExpired {
		t.Fatalf("poll after expiry: %v", err)
	}

	// An approved request not collected in time expires too (ExpireDue).
	g.chip, g.launch = 5, 5
	a = e.request(g, wire.PurposeBoot, 0)
	rel, _ = e.svc.Release(ctx, a.req)
	e.svc.Approve(ctx, rel.RequestID, e.approver("alice"), "")
	e.svc.Approve(ctx, rel.RequestID, e.approver("bob"), "")
	e.clk.Advance(16 * time.Minute)
	if n, err := e.svc.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expire due: %d %v", n, err)
	}
	if _, err := e.svc.Poll(ctx, rel.RequestID); code(err) != wire.CodeRequestExpired {
		t.Fatalf("poll after approved expiry: %v", err)
	}

	// Per-image policy: an image that denies platform changes.
	img := "img_test"
	if _, err := e.db.Exec(`INSERT INTO images(id, name, created_at) VALUES (?, 'web', ?)`, img, store.Time(e.clk.Now())); err != nil {
		t.Fatal(err)
	}
	vol2, _, s2, err := e.cust.CreateVolume(ctx, "officer:alice", img, "img-data")
	if err != nil {
		t.Fatal(err)
	}
	e.secrets[vol2] = s2
	if err := SetPolicy(ctx, e.cust.AuditLog(), "officer:alice", img, &Policy{Actions: map[Class]Action{ClassPlatformChange: ActionDeny}}); err != nil {
		t.Fatal(err)
	}
	h := guest{vm: "vm-2", vol: vol2, chip: 1, meas: 1, launch: 50, tcbSNP: 20}
	e.released(h)
	h.tcbSNP, h.launch = 21, 51
	a = e.request(h, wire.PurposeBoot, 0)
	if _, err := e.svc.Release(ctx, a.req); code(err) != wire.CodeDeniedByPolicy {
		t.Fatalf("image policy denies platform change: %v", err)
	}
	// A new VM presenting a released volume waits for an officer, who sees
	// which VM the volume belongs to.
	thief := guest{vm: "vm-new", vol: vol, chip: 7, meas: 1, launch: 70}
	rel, err = e.svc.Release(ctx, e.request(thief, wire.PurposeBoot, 0).req)
	if err != nil || rel.Status != wire.StatusPending || rel.Class != string(ClassFirstBoot) {
		t.Fatalf("new VM with a released volume: %+v %v", rel, err)
	}
	rq, _ := GetRequest(ctx, e.db, rel.RequestID)
	var sum Summary
	if err := json.Unmarshal(rq.Summary, &sum); err != nil || len(sum.VolumeReleasedTo) != 1 || sum.VolumeReleasedTo[0] != "vm-1" {
		t.Fatalf("summary: %s %v", rq.Summary, err)
	}

	// The default still asks approval for other images.
	g.chip, g.launch, g.tcbSNP = 5, 60, 21
	a = e.request(g, wire.PurposeBoot, 0)
	if rel, err := e.svc.Release(ctx, a.req); err != nil || rel.Status != wire.StatusPending {
		t.Fatalf("default policy: %+v %v", rel, err)
	}
}

func TestRestoreAndRotation(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	vol := e.volume("data")
	g := guest{vm: "vm-r", vol: vol, chip: 1, meas: 1, launch: 1}
	e.released(g)

	// Rotation: the agent asks, an officer approves, the agent gets both
	// secrets; only its confirmation makes generation 2 current.
	g.launch = 2
	a := e.request(g, wire.PurposeRotate, 0)
	rel, err := e.svc.Release(ctx, a.req)
	if err != nil || rel.Class != string(ClassRotation) {
		t.Fatalf("rotation: %+v %v", rel, err)
	}
	e.svc.Approve(ctx, rel.RequestID, e.approver("alice"), "yearly")
	got, err := e.svc.Poll(ctx, rel.RequestID)
	e.wantReleased(a, got, err, 1)
	if got.NewGeneration != 2 || len(got.NewSealed) == 0 {
		t.Fatalf("rotation answer: %+v", got)
	}
	newSecret, err := wire.Open(a.key, got.RequestID, vol, 2, got.NewSealed)
	if err != nil || bytes.Equal(newSecret, e.secrets[vol]) {
		t.Fatalf("new secret: %v", err)
	}
	if cur, pend, _ := e.cust.CurrentGeneration(ctx, vol); cur != 1 || pend != 2 {
		t.Fatalf("before confirmation: current %d pending %d", cur, pend)
	}
	conf := wire.RotationConfirm{RequestID: got.RequestID, VMID: g.vm, VolumeID: vol, Generation: 2, Proof: wire.RotationProof(newSecret, got.RequestID, vol, 2)}
	bad := conf
	bad.Proof = wire.RotationProof(e.secrets[vol], got.RequestID, vol, 2)
	if err := e.svc.ConfirmRotation(ctx, &bad); code(err) != wire.CodeBadProof {
		t.Fatalf("confirm with the old secret: %v", err)
	}
	if err := e.svc.ConfirmRotation(ctx, &conf); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	if cur, pend, _ := e.cust.CurrentGeneration(ctx, vol); cur != 2 || pend != 0 {
		t.Fatalf("after confirmation: current %d pending %d", cur, pend)
	}

	// A routine boot now gets generation 2.
	g.launch = 3
	a = e.request(g, wire.PurposeBoot, 0)
	rel, err = e.svc.Release(ctx, a.req)
	e.wantReleased(a, rel, err, 2)

	// Restore: the guest's disk is generation 1 again.
	g.launch = 4
	a = e.request(g, wire.PurposeBoot, 1)
	rel, err = e.svc.Release(ctx, a.req)
	if err != nil || rel.Class != string(ClassRestore) || rel.Status != wire.StatusPending {
		t.Fatalf("restore: %+v %v", rel, err)
	}
	e.svc.Approve(ctx, rel.RequestID, e.approver("alice"), "restored from backup")
	got, err = e.svc.Poll(ctx, rel.RequestID)
	e.wantReleased(a, got, err, 1)

	// A snapshot of an earlier launch presented again: restore.
	g.launch = 1
	a = e.request(g, wire.PurposeBoot, 0)
	if rel, err := e.svc.Release(ctx, a.req); err != nil || rel.Class != string(ClassRestore) {
		t.Fatalf("earlier launch: %+v %v", rel, err)
	}

	// An officer starts a rotation: the next routine boot carries the
	// pending generation beside the current one.
	if _, err := e.cust.Rotate(ctx, "officer:alice", vol); err != nil {
		t.Fatal(err)
	}
	g.launch = 5
	a = e.request(g, wire.PurposeBoot, 0)
	rel, err = e.svc.Release(ctx, a.req)
	e.wantReleased(a, rel, err, 2)
	if rel.NewGeneration != 3 || len(rel.NewSealed) == 0 {
		t.Fatalf("officer rotation not delivered: %+v", rel)
	}
}

// TestCommitterSurvivesAFailingDecision: one decision's error or panic rolls
// back only its own savepoint; the others in the batch commit.
func TestCommitterSurvivesAFailingDecision(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	insert := func(key string) func(*sql.Tx) error {
		return func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, '1', 'now')`, key)
			return err
		}
	}
	errs := make(chan error, 3)
	go func() { errs <- e.svc.tx(ctx, insert("a")) }()
	go func() {
		errs <- e.svc.tx(ctx, func(tx *sql.Tx) error {
			insert("b")(tx)
			panic("boom")
		})
	}()
	go func() {
		errs <- e.svc.tx(ctx, func(tx *sql.Tx) error {
			insert("c")(tx)
			return errors.New("refused")
		})
	}()
	var failed int
	for i := 0; i < 3; i++ {
		if <-errs != nil {
			failed++
		}
	}
	if failed != 2 {
		t.Fatalf("%d decisions failed, want 2", failed)
	}
	if err := e.svc.tx(ctx, insert("d")); err != nil {
		t.Fatalf("committer after a panic: %v", err)
	}
	var keys []string
	rows, _ := e.db.Query(`SELECT key FROM settings WHERE key IN ('a','b','c','d') ORDER BY key`)
	for rows.Next() {
		var k string
		rows.Scan(&k)
		keys = append(keys, k)
	}
	rows.Close()
	if strings.Join(keys, ",") != "a,d" {
		t.Fatalf("committed keys %v, want a,d", keys)
	}
}

// The engine reuses the policy it parsed until the configuration version
// moves: a change, by the console or by any other writer of the database,
// applies to the very next request.
func TestPolicyChangesApplyToTheNextRequest(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	if _, err := e.cust.Unlock(ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	g := guest{vm: "vm-1", vol: e.volume("data"), chip: 1, meas: 1, launch: 1, tcbSNP: 20}
	e.released(g)
	boot := func() (*wire.Release, error) {
		g.launch++
		return e.svc.Release(ctx, e.request(g, wire.PurposeBoot, 0).req)
	}
	if rel, err := boot(); err != nil || rel.Status != wire.StatusReleased {
		t.Fatalf("routine boot with the policy cached: %+v %v", rel, err)
	}
	if err := SetPolicy(ctx, e.cust.AuditLog(), "officer:alice", "", &Policy{Actions: map[Class]Action{ClassRoutine: ActionDeny}}); err != nil {
		t.Fatal(err)
	}
	if _, err := boot(); code(err) != wire.CodeDeniedByPolicy {
		t.Fatalf("routine boot after the console denied routine boots: %v", err)
	}
	// Another writer (a command-line tool, a restore) removes the setting
	// behind the engine's back.
	if _, err := e.db.Exec(`DELETE FROM settings WHERE key = ?`, settingPolicy); err != nil {
		t.Fatal(err)
	}
	if rel, err := boot(); err != nil || rel.Status != wire.StatusReleased {
		t.Fatalf("routine boot after the setting was removed: %+v %v", rel, err)
	}
}
