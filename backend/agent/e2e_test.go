package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/luks2"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

var testKDF = custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// console is a release API on loopback over the real verifier (trusting the
// simulated AMD root), the real key service and real SQLite.
type console struct {
	t    *testing.T
	dir  string
	db   *store.DB
	cust *custody.Service
	svc  *release.Service
	// verifier is the engine's verifier (CRL imports reload it).
	verifier *attest.Verifier
	id       *release.TLSIdentity
	srv      *http.Server
	url      string
	client   *agent.Client
}

func startConsole(t *testing.T, dir string, init bool) *console {
	return startConsoleAt(t, dir, init, "127.0.0.1:0")
}

func startConsoleAt(t *testing.T, dir string, init bool, addr string) *console {
	t.Helper()
	ctx := context.Background()
	c := &console{t: t, dir: dir}
	var err error
	c.db, err = store.Open(ctx, storetest.Location(t, dir), store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	c.cust = custody.New(c.db, custody.Options{KDF: testKDF})
	if init {
		_, err = c.cust.Init(ctx, "alice", []byte("correct horse battery"))
	} else {
		_, err = c.cust.Unlock(ctx, "alice", []byte("correct horse battery"))
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.NewVerifier(ctx, attest.Options{TrustSimulatedRoot: true, SimulatedRoots: sim.Root().TrustedRoots(), Certs: attest.NewCertCache(c.db)})
	if err != nil {
		t.Fatal(err)
	}
	c.verifier = v
	c.svc, err = release.New(release.Config{DB: c.db, Verifier: release.AttestVerifier{Verifier: v, References: attest.NewReferences(c.db)}, Secrets: c.cust})
	if err != nil {
		t.Fatal(err)
	}
	c.id, err = release.LoadOrCreateTLS(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", addr, c.id.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.srv = release.NewServer(release.NewHandler(c.svc, release.ServerOptions{VMRate: 1000, VMBurst: 1000}), c.id, nil)
	go c.srv.Serve(ln)
	c.url = "https://" + ln.Addr().String()
	c.client, err = agent.NewClient(c.url, c.id.Pin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *console) stop() {
	c.srv.Close()
	c.cust.Lock()
	c.db.Close()
}

func (c *console) approveAll(t *testing.T) func(*wire.Release) {
	var once sync.Map
	return func(rel *wire.Release) {
		if _, done := once.LoadOrStore(rel.RequestID, true); done {
			return
		}
		if _, err := c.svc.Approve(context.Background(), rel.RequestID, release.Approver{Name: "alice", AuthenticatedAt: time.Now()}, "e2e"); err != nil {
			t.Errorf("approve %s: %v", rel.RequestID, err)
		}
	}
}

// luksVolume makes a real LUKS2 file with cryptsetup luksFormat whose only
// keyslot opens with secret, and a keyholder token.
func luksVolume(t *testing.T, dir string, secret []byte, tok luks2.Token) string {
	t.Helper()
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 20<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file=-", path)
	cmd.Stdin = bytes.NewReader(secret)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup luksFormat (Debian package cryptsetup-bin): %v: %s", err, out)
	}
	if err := (agent.Cryptsetup{}).WriteToken(context.Background(), path, tok); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	con := startConsole(t, dir, true)
	defer func() { con.stop() }()

	// An image with approved reference values and a volume of it.
	if _, err := con.db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_web', 'web', ?)`, store.Time(time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(con.db).Put(ctx, "img_web", &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "officer:alice", "e2e"); err != nil {
		t.Fatal(err)
	}
	vol, gen, secret, err := con.cust.CreateVolume(ctx, "officer:alice", "img_web", "web-data")
	if err != nil {
		t.Fatal(err)
	}
	disk := luksVolume(t, dir, secret, luks2.Token{Keyslot: 0, VolumeID: vol, Generation: gen, ReleaseURL: con.url, SPKIPin: con.id.Pin})
	clear(secret)

	// The agent reads everything it needs from the token.
	tok, err := agent.ReadToken(disk)
	if err != nil || tok.VolumeID != vol || tok.ReleaseURL != con.url || tok.Generation != 1 {
		t.Fatalf("token: %+v %v", tok, err)
	}
	cs := agent.Cryptsetup{}
	g, err := agentsim.NewGuest(attest.Genoa, "chip-a")
	if err != nil {
		t.Fatal(err)
	}
	req := agent.Request{VMID: "vm-web-1", VolumeID: tok.VolumeID, Generation: tok.Generation, PollEvery: 10 * time.Millisecond, Waiting: con.approveAll(t)}

	// First boot: pending, approved, released, and the secret opens the
	// real LUKS2 volume (cryptsetup open --test-passphrase).
	res, err := con.client.Obtain(ctx, g, req)
	if err != nil {
		t.Fatalf("first boot: %v", err)
	}
	if res.Class != "first_boot" || !res.Simulated {
		t.Fatalf("first boot result: class %s simulated %v", res.Class, res.Simulated)
	}
	if err := cs.Test(ctx, disk, res.Secret); err != nil {
		t.Fatalf("released secret does not open the volume: %v", err)
	}
	if err := cs.Test(ctx, disk, bytes.Repeat([]byte{1}, 32)); err == nil {
		t.Fatal("a wrong secret opens the volume")
	}
	res.Wipe()

	// Reboot: routine, released without an officer.
	g.NewLaunch()
	noApprove := req
	noApprove.Waiting = func(rel *wire.Release) { t.Errorf("routine boot waited for approval (%s)", rel.Class) }
	res, err = con.client.Obtain(ctx, g, noApprove)
	if err != nil || res.Class != "routine_boot" {
		t.Fatalf("routine boot: %+v %v", res, err)
	}
	if err := cs.Test(ctx, disk, res.Secret); err != nil {
		t.Fatal(err)
	}

	// Heartbeat.
	if hb, err := con.client.Heartbeat(ctx, g, req); err != nil || hb.Status != "verified" {
		t.Fatalf("heartbeat: %+v %v", hb, err)
	}

	// Migration to another chip: pending, approved, completes.
	if err := g.MoveTo(attest.Genoa, "chip-b"); err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	res, err = con.client.Obtain(ctx, g, req)
	if err != nil || res.Class != "migration" {
		t.Fatalf("migration: %+v %v", res, err)
	}
	if err := cs.Test(ctx, disk, res.Secret); err != nil {
		t.Fatal(err)
	}

	// Refusals over the wire, each with its reason code.
	raw := func(r *wire.ReleaseRequest) error {
		var rel wire.Release
		return postJSON(con, "/v1/release", r, &rel)
	}
	fresh := func(g *agentsim.Guest, vm, vol string, gen ...int) *wire.ReleaseRequest {
		t.Helper()
		var ch wire.Challenge
		if err := postJSON(con, "/v1/challenge", nil, &ch); err != nil {
			t.Fatal(err)
		}
		_, pub, _ := wire.NewKeyPair()
		req := &wire.ReleaseRequest{Version: wire.Version, VMID: vm, VolumeID: vol, Purpose: wire.PurposeBoot, Nonce: ch.Nonce, HPKEPublicKey: pub}
		if len(gen) > 0 {
			req.Generation = gen[0]
		}
		rd, _ := wire.Transcript(req.Binding(nil))
		ev, err := g.Evidence(ctx, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Evidence = ev
		return req
	}
	g.NewLaunch()
	good := fresh(g, "vm-web-1", vol)
	if err := raw(good); err != nil {
		t.Fatalf("routine raw release: %v", err)
	}
	reused := fresh(g, "vm-web-1", vol)
	reused.Evidence = good.Evidence
	unbound := fresh(g, "vm-web-1", vol)
	_, unbound.HPKEPublicKey, _ = wire.NewKeyPair()
	other, _ := agentsim.NewGuest(attest.Milan, "chip-other")
	vol2, _, s2, _ := con.cust.CreateVolume(ctx, "officer:alice", "img_web", "other-data")
	clear(s2)
	if _, err := con.client.Obtain(ctx, other, agent.Request{VMID: "vm-other", VolumeID: vol2, PollEvery: 10 * time.Millisecond, Waiting: con.approveAll(t)}); err != nil {
		t.Fatal(err)
	}
	fromOther := fresh(other, "vm-web-1", vol) // vm-other's launch, presented as vm-web-1
	debug, _ := agentsim.NewGuest(attest.Genoa, "chip-a")
	debug.Debug = true
	unknownMeasurement, _ := agentsim.NewGuest(attest.Genoa, "chip-a")
	unknownMeasurement.Measurement = bytes.Repeat([]byte{0x42}, 48)
	cases := []struct {
		name string
		req  *wire.ReleaseRequest
		want wire.Code
	}{
		{"replayed nonce", good, wire.CodeNonceUnknown},
		{"reused report", reused, wire.CodeReportDataMismatch},
		{"HPKE key not bound to the report", unbound, wire.CodeReportDataMismatch},
		{"evidence from another VM", fromOther, wire.CodeReportOtherVM},
		{"debug policy", fresh(debug, "vm-web-1", vol), wire.CodePolicyDebug},
		{"unknown measurement", fresh(unknownMeasurement, "vm-web-1", vol), wire.CodeEvidenceInvalid},
	}
	for _, c := range cases {
		if err := raw(c.req); agent.Code(err) != c.want {
			t.Errorf("%s: err = %v, want %s", c.name, err, c.want)
		}
	}
	if err := fleet.New(con.db, con.cust.AuditLog()).Revoke(ctx, "officer:alice", "vm-other", "test", release.DenyRequestsOfRevokedTx); err != nil {
		t.Fatal(err)
	}
	other.NewLaunch()
	if err := raw(fresh(other, "vm-other", vol2)); agent.Code(err) != wire.CodeVMRevoked {
		t.Errorf("revoked VM: %v", err)
	}

	// Rotation: approved, new keyslot added, old one removed, token
	// updated, confirmed; only then is generation 2 current.
	g.NewLaunch()
	rot := req
	rot.Purpose = wire.PurposeRotate
	res, err = con.client.Obtain(ctx, g, rot)
	if err != nil || res.NewGeneration != 2 {
		t.Fatalf("rotation: %+v %v", res, err)
	}
	if cur, pend, _ := con.cust.CurrentGeneration(ctx, vol); cur != 1 || pend != 2 {
		t.Fatalf("before confirmation: %d/%d", cur, pend)
	}
	if err := con.client.Rotate(ctx, cs, disk, "vm-web-1", tok, res); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if cur, pend, _ := con.cust.CurrentGeneration(ctx, vol); cur != 2 || pend != 0 {
		t.Fatalf("after confirmation: %d/%d", cur, pend)
	}
	if err := cs.Test(ctx, disk, res.Secret); err == nil {
		t.Fatal("the old secret still opens the volume after rotation")
	}
	tok2, _ := agent.ReadToken(disk)
	if tok2.Generation != 2 {
		t.Fatalf("token generation after rotation = %d", tok2.Generation)
	}
	g.NewLaunch()
	req.Generation = tok2.Generation
	res, err = con.client.Obtain(ctx, g, noApproveFor(t, req))
	if err != nil || res.Generation != 2 {
		t.Fatalf("boot after rotation: %+v %v", res, err)
	}
	if err := cs.Test(ctx, disk, res.Secret); err != nil {
		t.Fatal(err)
	}

	// A console restart with a pending request keeps it: the guest that
	// waits is served by the restarted console.
	if err := g.MoveTo(attest.Genoa, "chip-c"); err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	pend := fresh(g, "vm-web-1", vol, 2)
	var rel wire.Release
	if err := postJSON(con, "/v1/release", pend, &rel); err != nil || rel.Status != wire.StatusPending {
		t.Fatalf("migration before restart: %+v %v", rel, err)
	}
	con.stop()
	con = startConsole(t, dir, false)
	var again wire.Release
	if err := getJSON(con, "/v1/release/"+rel.RequestID, &again); err != nil || again.Status != wire.StatusPending {
		t.Fatalf("after restart: %+v %v", again, err)
	}
	con.approveAll(t)(&again)
	if err := getJSON(con, "/v1/release/"+rel.RequestID, &again); err != nil || again.Status != wire.StatusReleased {
		t.Fatalf("collect after restart: %+v %v", again, err)
	}

	// An agent that waits while the console restarts (same address) keeps
	// waiting and collects from the restarted console.
	if err := g.MoveTo(attest.Genoa, "chip-d"); err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	addr := strings.TrimPrefix(con.url, "https://")
	waiting := make(chan string, 1)
	done := make(chan error, 1)
	var got *agent.Result
	go func() {
		r := req
		r.Waiting = func(rel *wire.Release) {
			select {
			case waiting <- rel.RequestID:
			default:
			}
		}
		var err error
		got, err = con.client.Obtain(ctx, g, r)
		done <- err
	}()
	id := <-waiting
	con.stop()
	con = startConsoleAt(t, dir, false, addr)
	if _, err := con.svc.Approve(ctx, id, release.Approver{Name: "alice", AuthenticatedAt: time.Now()}, "after restart"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got.Class != "migration" {
		t.Fatalf("waiting agent across a restart: %+v %v", got, err)
	}
	if err := cs.Test(ctx, disk, got.Secret); err != nil {
		t.Fatal(err)
	}
}

func noApproveFor(t *testing.T, r agent.Request) agent.Request {
	r.Waiting = func(rel *wire.Release) { t.Errorf("unexpected approval wait (%s)", rel.Class) }
	return r
}

func httpClient(con *console) *http.Client {
	cfg, _ := wire.PinnedTLSConfig(con.id.Pin)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}, Timeout: 30 * time.Second}
}

func decodeAnswer(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb wire.ErrorBody
		if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error == nil {
			return errors.New(resp.Status)
		}
		return eb.Error
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func postJSON(con *console, path string, body, out any) error {
	b, _ := json.Marshal(body)
	if body == nil {
		b = nil
	}
	resp, err := httpClient(con).Post(con.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	return decodeAnswer(resp, out)
}

func getJSON(con *console, path string, out any) error {
	resp, err := httpClient(con).Get(con.url + path)
	if err != nil {
		return err
	}
	return decodeAnswer(resp, out)
}

// TestAgentWaitsForAConsole: an agent started before its console asks again
// until the console answers; a server with another key is refused at once.
func TestAgentWaitsForAConsole(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Reserve an address, then start the console there only after the
	// agent has failed to reach it once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	id, err := release.LoadOrCreateTLS(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client, err := agent.NewClient("https://"+addr, id.Pin)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := agentsim.NewGuest(attest.Genoa, "chip-wait")
	retried := make(chan struct{})
	var once sync.Once
	var con *console
	result := make(chan error, 1)
	go func() {
		_, err := client.Obtain(ctx, g, agent.Request{VMID: "vm-wait", VolumeID: "vol_unknown", PollEvery: 10 * time.Millisecond,
			Retrying: func(error) { once.Do(func() { close(retried) }) }})
		result <- err
	}()
	<-retried
	con = startConsoleAt(t, dir, true, addr)
	defer con.stop()
	// The console answers now: the (unknown) volume is refused.
	if err := <-result; agent.Code(err) != wire.CodeVolumeUnknown {
		t.Fatalf("agent after the console came up: %v", err)
	}

	// Another key at that address: refused at once, no retries.
	other, _ := release.LoadOrCreateTLS(t.TempDir(), time.Now())
	c2, _ := agent.NewClient("https://"+addr, other.Pin)
	_, err = c2.Obtain(ctx, g, agent.Request{VMID: "vm-wait", VolumeID: "vol_unknown", PollEvery: 10 * time.Millisecond,
		Retrying: func(err error) { t.Errorf("retried after a pin mismatch: %v", err) }})
	if !errors.Is(err, wire.ErrPinMismatch) {
		t.Fatalf("pin mismatch: %v", err)
	}
}
