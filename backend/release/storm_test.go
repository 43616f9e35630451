package release

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/release/wire"
)

// TestMain lets the test binary act as the junk client of TestJunkStorm
// (a process of its own, so that the console's heap is measured alone).
func TestMain(m *testing.M) {
	if spec := os.Getenv("KEYHOLDER_JUNK_CLIENT"); spec != "" {
		if err := junkClient(spec); err != nil {
			fmt.Fprintln(os.Stderr, "junk client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// junkSpec is what the junk client sends: Total requests cycling through
// Bodies, from Addrs loopback addresses with Conns connections each. It
// prints "half" once half are answered and waits for a line on stdin
// before it sends more; at the end it prints the statuses it got as JSON.
type junkSpec struct {
	URL    string
	Bodies [][]byte
	Total  int
	Addrs  []string
	Conns  int
}

func junkClient(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var s junkSpec
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	statuses := map[string]int{}
	var mu sync.Mutex
	var next, answered atomic.Int64
	goOn := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for _, addr := range s.Addrs {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}}
		c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: s.Conns, MaxConnsPerHost: s.Conns}}
		for w := 0; w < s.Conns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= s.Total {
						return
					}
					if i == s.Total/2+s.Total/4 {
						<-goOn
					}
					st := "error"
					resp, err := c.Post(s.URL, "application/json", bytes.NewReader(s.Bodies[i%len(s.Bodies)]))
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						st = fmt.Sprint(resp.StatusCode)
					}
					mu.Lock()
					statuses[st]++
					mu.Unlock()
					if answered.Add(1) == int64(s.Total/2) {
						once.Do(func() {
							fmt.Println("half")
							go func() { bufio.NewReader(os.Stdin).ReadString('\n'); close(goOn) }()
						})
					}
				}
			}()
		}
	}
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(statuses)
}

// stormOptions are the handler's limits in TestJunkStorm. The limits per
// address are lifted: the storm stands for an attacker with addresses
// enough (an IPv6 /64 is 2^64 of them), so that only the bounds on what a
// request holds before it is authenticated stand between it and memory.
var stormOptions = ServerOptions{Reading: 8, Waiting: 256, SourceRate: 1, SourceBurst: 1 << 20, JunkRate: 1, JunkBurst: 1 << 20,
	ChallengeRate: 1, ChallengeBurst: 1000} // the guest may be shed, and retry, many times

// stormConns is the number of junk connections (20 addresses × 25).
const stormConns = 500

// stormHeapBound is what junk may hold at once with stormOptions: 8
// bodies being read and decoded (each at most MaxBody, decoded into about
// as much again, plus the decoder's buffers), 16 KiB for each of the 256 waiting
// request and each connection (the server's buffers, request and
// goroutine bookkeeping), and 4 MiB of slack for the server's and the
// sampler's own garbage.
const stormHeapBound = 8*4*wire.MaxBody + (256+stormConns)*16<<10 + 4<<20

// TestJunkStorm: 3,000 malformed and forged requests from 20 loopback
// addresses, most naming the real guest's VM, against the real HTTP server.
// The guest, booting in the middle of the storm, still gets its key; the
// audit log grows by one entry for the storm; what requests hold before
// they are authenticated, and the heap with it, stays within the handler's
// bounds.
func TestJunkStorm(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	g := guest{vm: "vm-victim", vol: e.volume("victim"), chip: 1, meas: 1, launch: 1}
	e.released(g) // known: its next boot is routine

	o := stormOptions
	o.Now = e.clk.Now // limits do not refill during the test: no timing
	h := NewHandler(e.svc, o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	id, err := LoadOrCreateTLS(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The real server and its limits; plain HTTP on loopback (TLS is
	// tested elsewhere and changes nothing here).
	srv := NewServer(h, id, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()
	entries := func() int64 {
		seq, _, err := audit.Head(ctx, e.db)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	auditBefore := entries()

	// The junk: big malformed bodies, forged nonces (random, or a used
	// challenge with its MAC changed) and replays of a used challenge, for
	// the victim's VM ID (and some for other VM IDs), the forged ones with
	// certificate-sized fields that the decoder holds.
	big := `{"vm_id":"vm-victim","evidence":{"report":"` + strings.Repeat("A", wire.MaxBody-200) + `"`
	used := e.request(g, wire.PurposeBoot, 0)
	if _, err := e.svc.Release(ctx, used.req); err != nil {
		t.Fatal(err)
	}
	pad := make([]byte, wire.MaxCertSize)
	rand.Read(pad)
	padded := func(r *wire.ReleaseRequest) *wire.ReleaseRequest {
		ev := &r.Evidence
		ev.VCEK, ev.VLEK, ev.ASK, ev.ARK, ev.CertTable = pad, pad, pad, pad, pad
		return r
	}
	var bodies [][]byte
	for v := 0; v < 16; v++ {
		forged := e.requestNoChallenge(g)
		rand.Read(forged.Nonce)
		if v%2 == 1 {
			forged.VMID = fmt.Sprintf("vm-junk-%d", v) // not every junk names the victim
		}
		badMAC := *used.req
		badMAC.Nonce = bytes.Clone(used.req.Nonce)
		badMAC.Nonce[20] ^= 1 + byte(v)
		replay := *used.req
		for _, r := range []*wire.ReleaseRequest{forged, &badMAC, &replay} {
			b, _ := json.Marshal(padded(r))
			bodies = append(bodies, b)
		}
		bodies = append(bodies, []byte(big))
	}
	var addrs []string
	for a := 2; a < 22; a++ {
		addrs = append(addrs, fmt.Sprintf("127.0.0.%d", a))
	}
	spec, _ := json.Marshal(junkSpec{URL: base + "/v1/release", Bodies: bodies, Total: 3000, Addrs: addrs, Conns: stormConns / len(addrs)})
	specFile := filepath.Join(t.TempDir(), "junk.json")
	if err := os.WriteFile(specFile, spec, 0o600); err != nil {
		t.Fatal(err)
	}

	// The heap is sampled while the storm runs, with a low GC target so
	// that it measures what is held rather than garbage waiting for a
	// collection. The bound checked is the handler's own, not a time.
	var peakHeap atomic.Uint64
	heapNow := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	heapBefore := heapNow()
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if v := heapNow(); v > peakHeap.Load() {
				peakHeap.Store(v)
			}
			select {
			case <-stop:
				return
			default:
				runtime.Gosched()
			}
		}
	}()

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "KEYHOLDER_JUNK_CLIENT="+specFile)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "half\n" {
		t.Fatalf("junk client: %q %v", line, err)
	}

	// The real guest, from its own address, while junk keeps arriving: it
	// retries what the agent retries (busy).
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	gc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	var rel wire.Release
	var a attempt
	status := 0
	for try := 0; try < 1000 && status != http.StatusOK; try++ {
		resp, err := gc.Post(base+"/v1/challenge", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		var ch wire.Challenge
		json.NewDecoder(resp.Body).Decode(&ch)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("guest's challenge: HTTP %d", resp.StatusCode)
		}
		g.launch = byte(10 + try%200)
		k, pub, _ := wire.NewKeyPair()
		a = attempt{key: k, req: &wire.ReleaseRequest{Version: wire.Version, VMID: g.vm, VolumeID: g.vol, Purpose: wire.PurposeBoot,
			Nonce: ch.Nonce, HPKEPublicKey: pub}}
		rd, _ := wire.Transcript(a.req.Binding(nil))
		a.req.Evidence = wire.Evidence{Report: g.report(rd)}
		b, _ := json.Marshal(a.req)
		resp, err = gc.Post(base+"/v1/release", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
		if status == http.StatusOK {
			json.Unmarshal(data, &rel)
		} else if status != http.StatusServiceUnavailable {
			t.Fatalf("the real guest during the storm: HTTP %d %s", status, data)
		}
	}
	io.WriteString(stdin, "go on\n")
	var statuses map[string]int
	if err := json.NewDecoder(out).Decode(&statuses); err != nil {
		t.Fatalf("junk client's statuses: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("junk client: %v", err)
	}
	close(stop)
	sampler.Wait()
	e.wantReleased(a, &rel, nil, 1)

	for st, n := range statuses {
		switch st {
		case "400", "403", "429", "503":
		default:
			t.Errorf("%d junk requests were answered %s", n, st)
		}
	}
	st := h.Stats()
	fromStorm := 0
	h.junk.mu.Lock()
	for _, addr := range addrs {
		fromStorm += h.junk.nets["127.0.0.0/24"].addrs[addr]
	}
	h.junk.mu.Unlock()
	if fromStorm != 3000 {
		t.Errorf("%d junk requests counted from the storm's addresses, want 3000 (%v)", fromStorm, statuses)
	}
	if st.PeakReading > o.Reading || st.PeakWaiting > o.Waiting {
		t.Errorf("bounds exceeded: %+v with %+v", st, o)
	}
	// Junk is audited in aggregate: one entry for the storm's /24, beside
	// the guest's release.
	if err := h.FlushJunk(context.Background()); err != nil {
		t.Fatal(err)
	}
	if grew := entries() - auditBefore; grew > 3 {
		t.Errorf("the audit log grew by %d entries during the storm", grew)
	}
	var reason string
	if err := e.db.QueryRowContext(ctx, `SELECT reason FROM audit_log WHERE action = 'release.junk' AND subject = '127.0.0.0/24'`).Scan(&reason); err != nil {
		t.Fatalf("no junk entry for the storm's network: %v", err)
	}
	// (The guest's own requests shed while the console was full count too.)
	if n, _ := fmt.Sscanf(reason, "%d request(s) refused", &fromStorm); n != 1 || fromStorm < 3000 || !strings.Contains(reason, "127.0.0.2 (") {
		t.Errorf("junk entry: %s", reason)
	}
	limit := uint64(stormHeapBound)
	if grew := peakHeap.Load() - min(heapBefore, peakHeap.Load()); grew > limit {
		t.Errorf("heap grew by %d MiB during the storm, bound %d MiB", grew>>20, limit>>20)
	} else {
		t.Logf("heap grew by %.1f MiB during the storm (bound %.1f MiB); answers %v; %+v", float64(grew)/(1<<20), float64(limit)/(1<<20), statuses, st)
	}
}
