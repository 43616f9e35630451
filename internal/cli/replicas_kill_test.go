package cli

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/images"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// serveChildEnv makes the test binary run `keyholder serve` (TestMain): the
// replicas are real processes that a test can SIGKILL.
const serveChildEnv = "KEYHOLDER_TEST_SERVE_CHILD"

func runServeChild() int {
	cfg := Config{Version: "test", Assets: fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>test</title>")}}}
	return Run(cfg, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

type replicaProc struct {
	cmd        *exec.Cmd
	consoleURL string
	releaseURL string
	out        *bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe starts one `keyholder serve` replica on the shared database
// and data directory and waits until both listeners are up.
func startServe(t *testing.T, data, dbURL string) *replicaProc {
	t.Helper()
	console, rel := freeAddr(t), freeAddr(t)
	cmd := exec.Command(os.Args[0], "serve", "--data", data, "--database", dbURL, "--listen", console,
		"--release-listen", rel, "--dev-trust-simulated-amd-root", "--auto-unseal=false")
	cmd.Env = append(os.Environ(), serveChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); pw.Close() })
	p := &replicaProc{cmd: cmd, consoleURL: "http://" + console, releaseURL: "https://" + rel, out: &errb}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		seen := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Keyholder console:") || strings.HasPrefix(sc.Text(), "Release API for guests:") {
				if seen++; seen == 2 {
					close(up)
				}
			}
		}
	}()
	select {
	case <-up:
	case <-time.After(60 * time.Second):
		t.Fatalf("replica did not start: %s", errb.String())
	}
	return p
}

// login unlocks the replica's key service with an officer login, as an
// officer opening the replica's console does.
func (p *replicaProc) login(t *testing.T, name, pass string) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.consoleURL+"/api/call/Session/Login", strings.NewReader(fmt.Sprintf(`[%q, %q]`, name, pass)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Keyholder-Client", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login at %s: %d %s", p.consoleURL, resp.StatusCode, body)
	}
}

// TestReplicasSurviveSIGKILL is issue 19's proof: three `keyholder serve`
// replicas on one PostgreSQL database; 2,000 simulated guests boot, spread
// over the replicas, and one replica is SIGKILLed mid-storm. Every guest
// still gets its own volume's key (from another replica), every one-time
// approval is delivered exactly once, `keyholder audit verify` passes (no
// fork: one chain, contiguous), and no request is lost.
func TestReplicasSurviveSIGKILL(t *testing.T) {
	guests, firstBoots, replicas := 2000, 24, 3
	if n := os.Getenv("KEYHOLDER_TEST_REPLICA_GUESTS"); n != "" {
		fmt.Sscan(n, &guests)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dbURL := storetest.NewDatabase(t, storetest.Server(t))
	data := t.TempDir()
	passFile := secretFile(t, t.TempDir(), "pass", "alice's long passphrase")

	// The console and its fleet, as a console that ran before: routine
	// guests whose chip, measurement and launch were released before, and
	// guests that boot for the first time (an officer approves each once).
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := custody.New(db, custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, CheckpointEvery: 256})
	if _, err := cust.Init(ctx, "alice", []byte("alice's long passphrase")); err != nil {
		t.Fatal(err)
	}
	product := attest.Genoa
	tcb := sim.DefaultTCB(product)
	ftcb := fleet.TCB{Bootloader: tcb.Bootloader, TEE: tcb.TEE, SNP: tcb.SNP, Microcode: tcb.Microcode}
	chips := make([]*sim.Chip, 8)
	for i := range chips {
		if chips[i], err = sim.NewChip(product, fmt.Sprintf("replica-chip-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	total := guests + firstBoots
	vols := make([]string, total)
	secrets := make([][]byte, total)
	now := time.Now()
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		im, err := images.CreateTx(ctx, tx, now, "replicas", "", "alice")
		if err != nil {
			return err
		}
		if _, err := attest.PutReferenceTx(ctx, tx, now, im.ID, &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "alice", ""); err != nil {
			return err
		}
		for i := range vols {
			id, gen, secret, err := cust.CreateVolumeTx(ctx, tx, "officer:alice", im.ID, fmt.Sprintf("vol-%05d", i))
			if err != nil {
				return err
			}
			vols[i], secrets[i] = id, secret
			if i >= guests {
				continue // boots for the first time
			}
			if _, err := fleet.Record(ctx, tx, fleet.Observation{At: now, VMID: fmt.Sprintf("vm-%05d", i), VolumeID: id, ImageID: im.ID,
				Kind: "release", Result: fleet.ResultReleased, Status: fleet.Verified, Class: string(release.ClassRoutine),
				Authentic: true, Product: string(product), Signer: "VCEK", ChipID: hex.EncodeToString(chips[i%len(chips)].ID()),
				Measurement: hex.EncodeToString(sim.DemoMeasurement), ReportID: fmt.Sprintf("old-launch-%d", i), TCB: ftcb, Simulated: true,
				Released: true, Generation: gen, Create: true}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Three replicas, each unlocked by an officer login. The first makes
	// the release listener's TLS identity in the shared data directory.
	procs := make([]*replicaProc, replicas)
	for i := range procs {
		procs[i] = startServe(t, data, dbURL)
		procs[i].login(t, "alice", "alice's long passphrase")
	}
	id, err := release.LoadOrCreateTLS(data, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// Guests: each tries the replicas starting at its own (spread), and
	// fails over to the next one when its replica dies.
	var done, failed, retries atomic.Int64
	var firstRetry atomic.Value
	errs := make([]error, total)
	got := make([][]byte, total)
	killAt := int64(guests / 3)
	killed := make(chan struct{})
	var killOnce sync.Once
	boot := func(i int) {
		// Each guest has an address of its own (127.0.N.M), as guests do:
		// the release API limits requests per address and per /24.
		src := &net.TCPAddr{IP: net.IPv4(127, 1+byte(i/250), byte(i%250), 1)}
		clients := make([]*agent.Client, replicas)
		for k := range clients {
			cfg, err := wire.PinnedTLSConfig(id.Pin)
			if err != nil {
				errs[i] = err
				return
			}
			tr := &http.Transport{TLSClientConfig: cfg, DialContext: (&net.Dialer{LocalAddr: src}).DialContext, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			clients[k] = agent.NewClientWith(procs[(i+k)%replicas].releaseURL, &http.Client{Transport: tr, Timeout: 60 * time.Second})
		}
		pool := agent.PoolOf(clients...)
		g := &agentsim.Guest{Chip: chips[i%len(chips)]}
		g.NewLaunch()
		res, err := pool.Obtain(ctx, g, agent.Request{VMID: fmt.Sprintf("vm-%05d", i), VolumeID: vols[i], MaxWait: 3 * time.Minute,
			PollEvery: 200 * time.Millisecond,
			Retrying:  func(err error) { retries.Add(1); firstRetry.CompareAndSwap(nil, err.Error()) }, Backoff: agent.Backoff{Base: 50 * time.Millisecond, Max: time.Second}})
		if err != nil {
			errs[i] = err
			failed.Add(1)
			return
		}
		got[i] = res.Secret
		if done.Add(1) == killAt {
			killOnce.Do(func() {
				// SIGKILL: no shutdown, no final checkpoint, connections cut.
				procs[0].cmd.Process.Signal(syscall.SIGKILL)
				close(killed)
			})
		}
	}
	// Progress every 5 s, stopped before the test returns (a log line after
	// it would panic).
	stopProgress, progressDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(progressDone)
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-ctx.Done():
				return
			case <-tk.C:
				t.Logf("progress: %d released, %d failed, %d retries (first: %v)", done.Load(), failed.Load(), retries.Load(), firstRetry.Load())
			}
		}
	}()
	defer func() { close(stopProgress); <-progressDone }()
	var wg sync.WaitGroup
	// The first boots wait for an officer while the storm runs.
	for i := guests; i < total; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); boot(i) }()
	}
	next := atomic.Int64{}
	for w := 0; w < 48; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= guests {
					return
				}
				boot(i)
			}
		}()
	}
	// The officer approves every first boot once it waits (on any replica:
	// the command line writes to the shared database).
	<-killed
	approved := map[string]bool{}
	deadline := time.Now().Add(2 * time.Minute)
	for len(approved) < firstBoots && time.Now().Before(deadline) {
		rows, err := db.QueryContext(ctx, `SELECT id FROM approval_requests WHERE status = 'pending'`)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for rows.Next() {
			var id string
			rows.Scan(&id)
			ids = append(ids, id)
		}
		rows.Close()
		for _, rid := range ids {
			if approved[rid] {
				continue
			}
			var l cliLog
			l.run(t, 0, "requests", "approve", rid, "--data", data, "--database", dbURL, "--officer", "alice", "--passphrase-file", passFile)
			approved[rid] = true
		}
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()

	if n := failed.Load(); n > 0 {
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%d guests got no key; guest %d: %v", n, i, err)
			}
		}
	}
	for i := range got {
		if !bytes.Equal(got[i], secrets[i]) {
			t.Fatalf("guest %d did not get its volume's key", i)
		}
	}
	if len(approved) != firstBoots {
		t.Fatalf("%d first boots waited for an officer, want %d", len(approved), firstBoots)
	}
	// Each approval was delivered exactly once: its request is completed
	// and one release was recorded for it.
	for rid := range approved {
		var st string
		var n int
		db.QueryRowContext(ctx, `SELECT status FROM approval_requests WHERE id = ?`, rid).Scan(&st)
		db.QueryRowContext(ctx, `SELECT COUNT(*) FROM attestations WHERE request_id = ? AND result = 'released'`, rid).Scan(&n)
		if st != "completed" || n != 1 {
			t.Fatalf("approved request %s: status %s, %d releases recorded; want completed, 1", rid, st, n)
		}
	}
	// No request lost: every guest's release is recorded.
	var released int
	db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT vm_id) FROM attestations WHERE kind = 'release' AND result = 'released' AND at >= ?`, store.Time(now)).Scan(&released)
	if released < total {
		t.Fatalf("%d guests' releases recorded, want %d", released, total)
	}
	// The audit chain never forked: one entry per sequence number, the
	// chain and its checkpoints verify.
	var n, max int64
	db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM audit_log`).Scan(&n, &max)
	if n != max {
		t.Fatalf("audit log has %d entries up to seq %d", n, max)
	}
	var l cliLog
	out := l.run(t, 0, "audit", "verify", "--data", data, "--database", dbURL)
	if !strings.Contains(out, "verifies") {
		t.Fatalf("audit verify: %s", out)
	}
	t.Logf("%d guests and %d first boots served by %d replicas, one SIGKILLed after %d releases; audit log %d entries", guests, firstBoots, replicas, killAt, n)

}
