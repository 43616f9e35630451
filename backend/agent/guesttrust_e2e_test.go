package agent_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/fleet"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

// referencedVolume makes an image whose reference values admit the demo
// measurement at any TCB, and a volume of it.
func referencedVolume(t *testing.T, con *console, image string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := con.db.Exec(`INSERT INTO images(id, name, created_at) VALUES (?, ?, ?)`, image, image, store.Time(time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(con.db).Put(ctx, image, &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "officer:alice", "e2e"); err != nil {
		t.Fatal(err)
	}
	vol, _, secret, err := con.cust.CreateVolume(ctx, "officer:alice", image, image+"-data")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	return vol
}

// obtainClass boots g once as vmID and returns the class the console
// decided, approving when asked (approve) or failing the test when an
// approval is asked for and approve is false.
func obtainClass(t *testing.T, con *console, g *agentsim.Guest, vmID, vol string, approve bool) string {
	t.Helper()
	req := agent.Request{VMID: vmID, VolumeID: vol, PollEvery: 10 * time.Millisecond, MaxWait: time.Minute}
	var asked string
	approveFn := con.approveAll(t)
	req.Waiting = func(rel *wire.Release) {
		asked = rel.Class
		if approve {
			approveFn(rel)
			return
		}
		t.Errorf("%s waited for an approval (%s)", vmID, rel.Class)
	}
	if !approve {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := con.client.Obtain(ctx, g, req)
		if err != nil {
			if asked != "" {
				return asked
			}
			t.Fatalf("%s: %v", vmID, err)
		}
		res.Wipe()
		return res.Class
	}
	res, err := con.client.Obtain(context.Background(), g, req)
	if err != nil {
		t.Fatalf("%s: %v", vmID, err)
	}
	res.Wipe()
	return res.Class
}

// TestMaskedChipMigration: a VM approved on one chip whose host masks
// CHIP_ID, then booted on another such chip, is a migration: chip identity
// comes from the VCEK's hardware ID, not the maskable report field.
func TestMaskedChipMigration(t *testing.T) {
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	vol := referencedVolume(t, con, "img_masked")

	g, err := agentsim.NewGuest(attest.Genoa, "masked-a")
	if err != nil {
		t.Fatal(err)
	}
	g.MaskChipID = true
	if c := obtainClass(t, con, g, "vm-masked", vol, true); c != string(release.ClassFirstBoot) {
		t.Fatalf("first boot on a masked chip: class %s", c)
	}
	g.NewLaunch()
	if c := obtainClass(t, con, g, "vm-masked", vol, false); c != string(release.ClassRoutine) {
		t.Fatalf("reboot on the same masked chip: class %s, want routine_boot", c)
	}
	if err := g.MoveTo(attest.Genoa, "masked-b"); err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	var asked []string
	req := agent.Request{VMID: "vm-masked", VolumeID: vol, PollEvery: 10 * time.Millisecond, Waiting: func(rel *wire.Release) {
		asked = append(asked, rel.Class)
		con.approveAll(t)(rel)
	}}
	res, err := con.client.Obtain(context.Background(), g, req)
	if err != nil {
		t.Fatal(err)
	}
	res.Wipe()
	if res.Class != string(release.ClassMigration) || len(asked) == 0 {
		t.Fatalf("boot on another masked chip: class %s (approval asked: %v), want migration", res.Class, asked)
	}

	// The fleet keys and shows the chip by its hardware ID, never zeros.
	gd, err := fleet.New(con.db, con.cust.AuditLog()).Get(context.Background(), "vm-masked", 0)
	if err != nil {
		t.Fatal(err)
	}
	chipB, _ := sim.NewChip(attest.Genoa, "masked-b")
	if want := attest.Hex(chipB.ID()).String(); gd.ChipID != want {
		t.Fatalf("fleet chip = %q, want the VCEK hardware ID %q", gd.ChipID, want)
	}
	for _, h := range gd.History {
		if h.ChipID != "" && h.ChipID == attest.Hex(make([]byte, 64)).String() {
			t.Fatalf("history row %d shows the masked CHIP_ID as the chip", h.ID)
		}
	}
}

// TestVLEKHasNoChipIdentity: with a VLEK there is no per-chip identity; the
// console says so (fleet, approval) and, unless the image's policy allows
// it, every new launch needs an officer. The same launch's heartbeats stay
// verified.
func TestVLEKHasNoChipIdentity(t *testing.T) {
	ctx := context.Background()
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	vol := referencedVolume(t, con, "img_vlek")

	g, err := agentsim.NewGuest(attest.Genoa, "vlek-host")
	if err != nil {
		t.Fatal(err)
	}
	g.VLEK = true
	if c := obtainClass(t, con, g, "vm-vlek", vol, true); c != string(release.ClassFirstBoot) {
		t.Fatalf("first boot with a VLEK: class %s", c)
	}
	if hb, err := con.client.Heartbeat(ctx, g, agent.Request{VMID: "vm-vlek", VolumeID: vol}); err != nil || hb.Status != "verified" {
		t.Fatalf("heartbeat of the same launch: %+v %v", hb, err)
	}
	gd, err := fleet.New(con.db, con.cust.AuditLog()).Get(ctx, "vm-vlek", 0)
	if err != nil {
		t.Fatal(err)
	}
	if gd.Signer != "VLEK" || gd.ChipIdentity != "none (VLEK)" || gd.ChipID != "" {
		t.Fatalf("fleet: signer %q chip identity %q chip %q", gd.Signer, gd.ChipIdentity, gd.ChipID)
	}

	// A new launch: the console cannot tell the chip, so an officer decides.
	g.NewLaunch()
	var reqID string
	res, err := con.client.Obtain(ctx, g, agent.Request{VMID: "vm-vlek", VolumeID: vol, PollEvery: 10 * time.Millisecond, Waiting: func(rel *wire.Release) {
		if reqID == "" {
			reqID = rel.RequestID
			r, err := release.GetRequest(ctx, con.db, rel.RequestID)
			if err != nil {
				t.Error(err)
			}
			var sum struct {
				Signer       string `json:"signer"`
				ChipIdentity string `json:"chip_identity"`
			}
			json.Unmarshal(r.Summary, &sum)
			if sum.Signer != "VLEK" || sum.ChipIdentity != "none (VLEK)" {
				t.Errorf("approval summary: signer %q chip identity %q", sum.Signer, sum.ChipIdentity)
			}
		}
		con.approveAll(t)(rel)
	}})
	if err != nil {
		t.Fatal(err)
	}
	res.Wipe()
	if reqID == "" || res.Class != string(release.ClassMigration) {
		t.Fatalf("new VLEK launch: class %s, approval asked %v; want an approved migration", res.Class, reqID != "")
	}

	// The image's policy may make VLEK launches routine.
	if err := release.SetPolicy(ctx, con.cust.AuditLog(), "officer:alice", "img_vlek", &release.Policy{VLEKRoutine: true}); err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	if c := obtainClass(t, con, g, "vm-vlek", vol, false); c != string(release.ClassRoutine) {
		t.Fatalf("new VLEK launch under vlek_routine: class %s", c)
	}
}

// TestTurinFMCChange: on Turin an FMC update is a platform change.
func TestTurinFMCChange(t *testing.T) {
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	vol := referencedVolume(t, con, "img_turin")
	g, err := agentsim.NewGuest(attest.Turin, "turin-a")
	if err != nil {
		t.Fatal(err)
	}
	if c := obtainClass(t, con, g, "vm-turin", vol, true); c != string(release.ClassFirstBoot) {
		t.Fatalf("first boot: %s", c)
	}
	g.NewLaunch()
	if c := obtainClass(t, con, g, "vm-turin", vol, false); c != string(release.ClassRoutine) {
		t.Fatalf("reboot: %s", c)
	}
	tcb := sim.DefaultTCB(attest.Turin)
	tcb.FMC++
	g.SetTCB(&tcb)
	g.NewLaunch()
	if c := obtainClass(t, con, g, "vm-turin", vol, true); c != string(release.ClassPlatformChange) {
		t.Fatalf("boot after an FMC update: class %s, want platform_change", c)
	}
	gd, err := fleet.New(con.db, con.cust.AuditLog()).Get(context.Background(), "vm-turin", 0)
	if err != nil {
		t.Fatal(err)
	}
	if gd.TCB.FMC != tcb.FMC {
		t.Fatalf("fleet TCB %+v lacks the FMC %d", gd.TCB, tcb.FMC)
	}
}

// rewriter is a man in the middle between agent and console: it edits the
// JSON body of every POST /v1/release.
type rewriter struct {
	next http.RoundTripper
	edit func(map[string]any)
}

func (rw rewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.URL.Path == "/v1/release" && rw.edit != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		rw.edit(m)
		b, _ = json.Marshal(m)
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
	}
	return rw.next.RoundTrip(r)
}

// TestTranscriptBindsWhatClassifies: the VM ID, purpose and generation a
// request names are bound into REPORT_DATA; a request edited on the way is
// refused, and an agent speaking an older wire version is told which.
func TestTranscriptBindsWhatClassifies(t *testing.T) {
	ctx := context.Background()
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	vol := referencedVolume(t, con, "img_bind")
	g, err := agentsim.NewGuest(attest.Genoa, "bind-a")
	if err != nil {
		t.Fatal(err)
	}
	if c := obtainClass(t, con, g, "vm-bind", vol, true); c != string(release.ClassFirstBoot) {
		t.Fatalf("first boot: %s", c)
	}
	cases := []struct {
		name string
		edit func(map[string]any)
		want wire.Code
		msg  []string
	}{
		{"VM ID changed", func(m map[string]any) { m["vm_id"] = "vm-stranger" }, wire.CodeReportDataMismatch, nil},
		{"purpose changed", func(m map[string]any) { m["purpose"] = "rotate" }, wire.CodeReportDataMismatch, nil},
		{"generation changed", func(m map[string]any) { m["generation"] = 1 }, wire.CodeReportDataMismatch, nil},
		{"old agent (no version)", func(m map[string]any) { delete(m, "version") }, wire.CodeUnsupportedVersion, []string{"version 1", "version 2"}},
	}
	pinned, _ := wire.PinnedTLSConfig(con.id.Pin)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hc := &http.Client{Transport: rewriter{next: &http.Transport{TLSClientConfig: pinned}, edit: c.edit}, Timeout: 30 * time.Second}
			client := agent.NewClientWith(con.url, hc)
			g.NewLaunch()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var pending string
			res, err := client.Obtain(cctx, g, agent.Request{VMID: "vm-bind", VolumeID: vol, PollEvery: 10 * time.Millisecond,
				Waiting: func(rel *wire.Release) { pending = rel.Class; cancel() }})
			if err == nil {
				res.Wipe()
				t.Fatalf("edited request released (class %s)", res.Class)
			}
			if pending != "" {
				t.Fatalf("edited request accepted as pending %s", pending)
			}
			if agent.Code(err) != c.want {
				t.Fatalf("err = %v, want %s", err, c.want)
			}
			for _, s := range c.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
	// The unedited agent still boots routinely.
	g.NewLaunch()
	if c := obtainClass(t, con, g, "vm-bind", vol, false); c != string(release.ClassRoutine) {
		t.Fatalf("unedited reboot: %s", c)
	}
}

// TestStaleCRLPolicy: without a fresh CRL a release only warns by default;
// under the policy "refuse" the evidence is refused until a fresh CRL is
// imported.
func TestStaleCRLPolicy(t *testing.T) {
	ctx := context.Background()
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	vol := referencedVolume(t, con, "img_crl")
	g, err := agentsim.NewGuest(attest.Milan, "crl-a")
	if err != nil {
		t.Fatal(err)
	}
	// Default (warn): the first boot goes through with no CRL at all.
	if c := obtainClass(t, con, g, "vm-crl", vol, true); c != string(release.ClassFirstBoot) {
		t.Fatalf("first boot under warn: %s", c)
	}
	if err := release.SetPolicy(ctx, con.cust.AuditLog(), "officer:alice", "", &release.Policy{StaleCRL: "refuse"}); err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	_, err = con.client.Obtain(ctx, g, agent.Request{VMID: "vm-crl", VolumeID: vol, PollEvery: 10 * time.Millisecond,
		Waiting: func(rel *wire.Release) { t.Errorf("waited (%s) under refuse without a CRL", rel.Class) }})
	var refused *agent.RefusedError
	if agent.Code(err) != wire.CodeEvidenceInvalid || !errors.As(err, &refused) || len(refused.Reason.Reasons) == 0 ||
		refused.Reason.Reasons[0].Code != string(attest.CodeRevocationNotChecked) {
		t.Fatalf("no CRL under refuse: %v", err)
	}
	// A fresh CRL for the product: released again.
	crl, err := sim.Root().CRL(attest.Milan, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := con.verifier.ImportCRL(ctx, attest.NewCertCache(con.db), crl, "e2e"); err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	if c := obtainClass(t, con, g, "vm-crl", vol, false); c != string(release.ClassRoutine) {
		t.Fatalf("fresh CRL under refuse: %s", c)
	}
}

// unreferencedVolume makes an image without reference values and a volume
// of it: its first boot pins the reference values.
func unreferencedVolume(t *testing.T, con *console, image string) string {
	t.Helper()
	if _, err := con.db.Exec(`INSERT INTO images(id, name, created_at) VALUES (?, ?, ?)`, image, image, store.Time(time.Now())); err != nil {
		t.Fatal(err)
	}
	vol, _, secret, err := con.cust.CreateVolume(context.Background(), "officer:alice", image, image+"-data")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	return vol
}

// claim is a genuine release request of guest g for vm and vol, sent over
// the release API; it returns the answer.
func claim(t *testing.T, con *console, g *agentsim.Guest, vm, vol string) (wire.Release, error) {
	t.Helper()
	var ch wire.Challenge
	if err := postJSON(con, "/v1/challenge", nil, &ch); err != nil {
		t.Fatal(err)
	}
	_, pub, _ := wire.NewKeyPair()
	req := &wire.ReleaseRequest{Version: wire.Version, VMID: vm, VolumeID: vol, Purpose: wire.PurposeBoot, Nonce: ch.Nonce, HPKEPublicKey: pub}
	rd, _ := wire.Transcript(req.Binding(nil))
	ev, err := g.Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Evidence = ev
	var rel wire.Release
	err = postJSON(con, "/v1/release", req, &rel)
	return rel, err
}

func approveAs(t *testing.T, con *console, id, officer string) {
	t.Helper()
	if _, err := con.svc.Approve(context.Background(), id, release.Approver{Name: officer, AuthenticatedAt: time.Now()}, "e2e"); err != nil {
		t.Fatalf("approve %s: %v", id, err)
	}
}

// TestFirstBootCannotBeHijacked: a stranger with genuine SNP evidence who
// claims the first boot of a volume without reference values can neither
// end the real guest's approved request nor slip through unnoticed:
// competing claims are shown together, approving one denies the others, the
// approval says which measurement it pins, and claims are limited per
// volume.
func TestFirstBootCannotBeHijacked(t *testing.T) {
	ctx := context.Background()
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	real, _ := agentsim.NewGuest(attest.Genoa, "real-host")
	stranger, _ := agentsim.NewGuest(attest.Milan, "stranger-host")
	stranger.Measurement = bytes.Repeat([]byte{0x5a}, 48)

	// 1. An approved request is never superseded, even by a request under
	// the same VM ID.
	vol1 := unreferencedVolume(t, con, "img_first1")
	a, err := claim(t, con, real, "vm-real", vol1)
	if err != nil || a.Status != wire.StatusPending {
		t.Fatalf("real first boot: %+v %v", a, err)
	}
	approveAs(t, con, a.RequestID, "alice")
	if _, err := claim(t, con, stranger, "vm-real", vol1); err != nil && agent.Code(err) != wire.CodeRateLimited {
		t.Logf("stranger's claim: %v", err)
	}
	r, err := release.GetRequest(ctx, con.db, a.RequestID)
	if err != nil || r.Status != release.StatusApproved {
		t.Fatalf("the real guest's approved request after a stranger's claim: %s %q %v", r.Status, r.Reason, err)
	}
	var got wire.Release
	if err := getJSON(con, "/v1/release/"+a.RequestID, &got); err != nil || got.Status != wire.StatusReleased {
		t.Fatalf("the real guest collects: %+v %v", got, err)
	}

	// 2. Competing claims are shown together; approving one denies the others.
	vol2 := unreferencedVolume(t, con, "img_first2")
	real.NewLaunch()
	rr, err := claim(t, con, real, "vm-real-2", vol2)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := claim(t, con, stranger, "vm-stranger", vol2)
	if err != nil {
		t.Fatal(err)
	}
	reqR, _ := release.GetRequest(ctx, con.db, rr.RequestID)
	reqS, _ := release.GetRequest(ctx, con.db, sr.RequestID)
	if !reqR.FirstBootClaim || len(reqR.Competing) != 1 || reqR.Competing[0] != sr.RequestID || len(reqS.Competing) != 1 || reqS.Competing[0] != rr.RequestID {
		t.Fatalf("competing claims not grouped: real %v %v, stranger %v", reqR.FirstBootClaim, reqR.Competing, reqS.Competing)
	}
	var sum struct {
		Pins string `json:"pins"`
	}
	json.Unmarshal(reqR.Summary, &sum)
	if !strings.Contains(sum.Pins, "pins measurement "+attest.Hex(sim.DemoMeasurement).String()) || !strings.Contains(sum.Pins, "img_first2") {
		t.Fatalf("the approval does not say what it pins: %q", sum.Pins)
	}
	approveAs(t, con, rr.RequestID, "alice")
	reqS, _ = release.GetRequest(ctx, con.db, sr.RequestID)
	if reqS.Status != release.StatusDenied || !strings.Contains(reqS.Reason, rr.RequestID) {
		t.Fatalf("the competing claim after the pick: %s %q", reqS.Status, reqS.Reason)
	}
	if err := getJSON(con, "/v1/release/"+sr.RequestID, &got); agent.Code(err) != wire.CodeDeniedByOfficer {
		t.Fatalf("the stranger polls: %v", err)
	}
	if err := getJSON(con, "/v1/release/"+rr.RequestID, &got); err != nil || got.Status != wire.StatusReleased {
		t.Fatalf("the picked claim collects: %+v %v", got, err)
	}
	var denials int
	con.db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'release.deny' AND subject = ?`, sr.RequestID).Scan(&denials)
	if denials != 1 {
		t.Fatalf("the competing claim's denial is not audited (%d entries)", denials)
	}

	// 3. Unreferenced first boots are limited per volume.
	vol3 := unreferencedVolume(t, con, "img_first3")
	var limited error
	for i := 0; i < 12 && limited == nil; i++ {
		g, _ := agentsim.NewGuest(attest.Genoa, "spam-host")
		g.Measurement = bytes.Repeat([]byte{byte(i + 1)}, 48)
		if _, err := claim(t, con, g, "vm-spam-"+string(rune('a'+i)), vol3); err != nil {
			limited = err
		}
	}
	if agent.Code(limited) != wire.CodeRateLimited {
		t.Fatalf("12 claims on one volume: %v", limited)
	}
	// Another volume is not affected.
	vol4 := unreferencedVolume(t, con, "img_first4")
	real.NewLaunch()
	if rel, err := claim(t, con, real, "vm-real-4", vol4); err != nil || rel.Status != wire.StatusPending {
		t.Fatalf("a claim on another volume: %+v %v", rel, err)
	}
}

// TestFirstBootPinnedMeanwhile: two volumes of one image without reference
// values; the first approved first boot pins its measurement, and an
// approved first boot of the other volume with another measurement is then
// refused instead of released unchecked.
func TestFirstBootPinnedMeanwhile(t *testing.T) {
	ctx := context.Background()
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	volA := unreferencedVolume(t, con, "img_pin")
	volB, _, secret, err := con.cust.CreateVolume(ctx, "officer:alice", "img_pin", "img_pin-b")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	ga, _ := agentsim.NewGuest(attest.Genoa, "pin-a")
	gb, _ := agentsim.NewGuest(attest.Genoa, "pin-b")
	gb.Measurement = bytes.Repeat([]byte{0x77}, 48)
	ra, err := claim(t, con, ga, "vm-pin-a", volA)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := claim(t, con, gb, "vm-pin-b", volB)
	if err != nil {
		t.Fatal(err)
	}
	approveAs(t, con, ra.RequestID, "alice")
	approveAs(t, con, rb.RequestID, "alice")
	var got wire.Release
	if err := getJSON(con, "/v1/release/"+ra.RequestID, &got); err != nil || got.Status != wire.StatusReleased {
		t.Fatalf("first pick: %+v %v", got, err)
	}
	// Refused either by the first-boot pin (denied by policy) or, first, by
	// the collection's re-check of the current reference values, which
	// changed after this approval (evidence invalid: ask again).
	got = wire.Release{}
	err = getJSON(con, "/v1/release/"+rb.RequestID, &got)
	if c := agent.Code(err); (c != wire.CodeDeniedByPolicy && c != wire.CodeEvidenceInvalid) || got.Status == wire.StatusReleased || len(got.Sealed) > 0 {
		t.Fatalf("a first boot the pinned values do not admit: status %q, %d sealed bytes, %v", got.Status, len(got.Sealed), err)
	}
}

// TestVLEKRequestNotSupersededByAStranger: a VLEK names no chip, so "asked
// again from the same chip" cannot be told apart from a stranger: another
// genuine VLEK guest running the same image under the real guest's VM ID
// must not end the real guest's pending request.
func TestVLEKRequestNotSupersededByAStranger(t *testing.T) {
	ctx := context.Background()
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	vol := referencedVolume(t, con, "img_vlek_sup")
	real, _ := agentsim.NewGuest(attest.Genoa, "vlek-real-host")
	real.VLEK = true
	if c := obtainClass(t, con, real, "vm-vlek-sup", vol, true); c != string(release.ClassFirstBoot) {
		t.Fatalf("first boot with a VLEK: class %s", c)
	}
	// The real guest's next launch waits for an officer (a VLEK launch).
	real.NewLaunch()
	rr, err := claim(t, con, real, "vm-vlek-sup", vol)
	if err != nil || rr.Status != wire.StatusPending {
		t.Fatalf("the real guest's new launch: %+v %v", rr, err)
	}
	// A stranger: the same image on another host of the same provider.
	stranger, _ := agentsim.NewGuest(attest.Genoa, "vlek-stranger-host")
	stranger.VLEK = true
	if _, err := claim(t, con, stranger, "vm-vlek-sup", vol); err != nil && agent.Code(err) != wire.CodeRateLimited {
		t.Logf("stranger's claim: %v", err)
	}
	r, err := release.GetRequest(ctx, con.db, rr.RequestID)
	if err != nil || r.Status != release.StatusPending {
		t.Fatalf("the real guest's pending request after a stranger's VLEK request: %s %q %v", r.Status, r.Reason, err)
	}
	// A VCEK guest that asks again from its own chip still supersedes its
	// own earlier request (its keys are gone with the reboot).
	vcek, _ := agentsim.NewGuest(attest.Genoa, "vcek-sup-host")
	if c := obtainClass(t, con, vcek, "vm-vcek-sup", vol, true); c != string(release.ClassFirstBoot) {
		t.Fatalf("first boot with a VCEK: class %s", c)
	}
	if err := vcek.MoveTo(attest.Genoa, "vcek-sup-other"); err != nil {
		t.Fatal(err)
	}
	vcek.NewLaunch()
	first, err := claim(t, con, vcek, "vm-vcek-sup", vol)
	if err != nil || first.Status != wire.StatusPending {
		t.Fatalf("migration: %+v %v", first, err)
	}
	vcek.NewLaunch()
	if _, err := claim(t, con, vcek, "vm-vcek-sup", vol); err != nil {
		t.Fatal(err)
	}
	if r, _ := release.GetRequest(ctx, con.db, first.RequestID); r.Status != release.StatusExpired {
		t.Fatalf("a VCEK guest's request after it asked again from the same chip: %s", r.Status)
	}
}

// TestMalformedCertTableRefused: a certificate table whose entry's offset
// plus length wraps around 32 bits (found by FuzzVerifyReport) is refused
// as malformed evidence. It used to panic inside the verifier while the
// request held a CPU slot, which was then never given back: a client with
// a challenge per slot stopped every release of the console.
func TestMalformedCertTableRefused(t *testing.T) {
	ctx := context.Background()
	con := startConsole(t, t.TempDir(), true)
	defer con.stop()
	vol := referencedVolume(t, con, "img_certtable")
	g, _ := agentsim.NewGuest(attest.Genoa, "certtable-host")
	if c := obtainClass(t, con, g, "vm-certtable", vol, true); c != string(release.ClassFirstBoot) {
		t.Fatalf("first boot: %s", c)
	}
	// One table entry (GUID, offset, length) and the all-zero end entry:
	// offset 0xffffffe1 and length 0x40 add up to 0x21 in 32 bits, inside
	// the table.
	table := make([]byte, 4096)
	table[0] = 0x63 // any GUID
	binary.LittleEndian.PutUint32(table[16:], 0xffffffe1)
	binary.LittleEndian.PutUint32(table[20:], 0x40)
	for i := 0; i < runtime.GOMAXPROCS(0)+2; i++ {
		var ch wire.Challenge
		if err := postJSON(con, "/v1/challenge", nil, &ch); err != nil {
			t.Fatal(err)
		}
		_, pub, _ := wire.NewKeyPair()
		req := &wire.ReleaseRequest{Version: wire.Version, VMID: "vm-certtable", VolumeID: vol, Purpose: wire.PurposeBoot, Nonce: ch.Nonce, HPKEPublicKey: pub}
		rd, _ := wire.Transcript(req.Binding(nil))
		g.NewLaunch()
		ev, err := g.Evidence(ctx, rd)
		if err != nil {
			t.Fatal(err)
		}
		ev.CertTable = table
		req.Evidence = ev
		var rel wire.Release
		err = postJSON(con, "/v1/release", req, &rel)
		if c := agent.Code(err); c != wire.CodeEvidenceInvalid && c != wire.CodeBadRequest {
			t.Fatalf("request %d with a wrapping certificate table: %+v, %v (code %q)", i, rel, err, c)
		}
	}
	// The console still verifies: the guest's next boot is routine.
	g.NewLaunch()
	if c := obtainClass(t, con, g, "vm-certtable", vol, false); c != string(release.ClassRoutine) {
		t.Fatalf("reboot after the malformed requests: %s", c)
	}
}
