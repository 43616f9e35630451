package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha512"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

var benchCommand = &command{
	name:  "bench",
	short: "measure the release engine under a boot storm (simulated guests)",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder bench release [--guests 10000] [--concurrency 256] [--chips 64] [--in-service N]
                               [--rate N | --rate-of-ceiling F] [--cold] [--json]
                               [--database FILE|postgres://...] [--wire [--replicas N]]

A boot storm against a fresh console in a temporary directory: every guest of
a known fleet reboots at once. Each guest's evidence (a report signed by the
simulated AMD root, bound to its own challenge and HPKE key) is made
beforehand and not timed; every request is then fully verified (signature,
chain, reference values, transcript), classified, its secret unwrapped and
HPKE-sealed, and the decision recorded and audited durably (synchronous
SQLite commit) before it counts. In the same run it measures the raw ECDSA
P-384 verify rate of this machine on all cores, the ceiling a release cannot
beat.

Two latencies are reported. The end-to-end latency is what a guest sees,
from its call until its answer; with --concurrency requests always in
flight it cannot be below concurrency / throughput (Little's law), however
fast the engine. The service time is measured inside the engine, from the
moment a request gets a processor slot to verify its evidence until its
decision is durable and its secret sealed. --in-service N makes the engine
admit at most N requests at once (the others wait in arrival order; by
default there is no such bound).

--rate N (or --rate-of-ceiling F, a share of the ECDSA rate just measured)
makes the storm an open loop: guest i boots at i/N seconds whether or not
earlier guests have their answers (still at most --concurrency in flight),
and its end-to-end latency counts from that moment. This is the latency at
a given load, which a closed loop cannot show.

The fleet is known: before the storm the console verifies two reports of
each chip (untimed), as a running console has, so the storm measures the
steady state. --cold skips that: the first report of each chip then also
verifies its VCEK's chain to the AMD root and the second builds its
signature table, inside the storm.

--database puts the console in that database (a SQLite file or a
PostgreSQL URL, empty: the bench initialises a console there) instead of a
temporary SQLite file. --wire sends each request as an agent does: HTTP
over TLS 1.3 to a real release API listener on loopback, the client
pinning its key, so the latencies include TLS, HTTP and JSON (the
per-address rate limits are lifted, as all guests come from 127.0.0.1).
--replicas N (with --wire) starts N consoles on the one database, each
with its own store handle, key service, engine and listener, as N serve
processes have them, and spreads the guests over them.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		guests := fs.Int("guests", 10000, "guests in the storm")
		conc := fs.Int("concurrency", 256, "requests in flight")
		chips := fs.Int("chips", 64, "simulated chips the guests run on")
		asJSON := fs.Bool("json", false, "print JSON")
		cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the storm to this file")
		inService := fs.Int("in-service", 0, "requests the engine admits at once (0: no bound)")
		rate := fs.Float64("rate", 0, "open loop: guests boot at this many per second (0: closed loop, each slot sends again when answered)")
		cold := fs.Bool("cold", false, "start the storm with a console that has not verified any of the chips yet (as right after a restart)")
		rateOfCeiling := fs.Float64("rate-of-ceiling", 0, "open loop at this share of the raw ECDSA P-384 rate measured in the same run (e.g. 0.7)")
		database := fs.String("database", "", "the bench console's database, holding no console yet: a SQLite file or a postgres:// URL (default: a SQLite file in a temporary directory)")
		overWire := fs.Bool("wire", false, "send every request through a real release API listener (HTTP over pinned TLS 1.3, as agents do) instead of calling the engine")
		replicas := fs.Int("replicas", 1, "consoles serving the storm on the one database, guests spread over them (needs --wire)")
		return func(args []string) error {
			if len(args) == 0 || args[0] != "release" {
				return &exitError{code: 2, msg: "usage: keyholder bench release [flags]"}
			}
			if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
				return &exitError{code: 2, msg: "usage: keyholder bench release [--guests N] [--concurrency N] [--chips N] [--json]"}
			}
			if *guests < 1 || *conc < 1 || *chips < 1 || *inService < 0 || *rate < 0 || *rateOfCeiling < 0 || *rateOfCeiling > 10 || *replicas < 1 || *replicas > 16 {
				return &exitError{code: 2, msg: "--guests, --concurrency and --chips must be positive, --in-service, --rate and --rate-of-ceiling not negative, --replicas 1 to 16"}
			}
			if *replicas > 1 && !*overWire {
				return &exitError{code: 2, msg: "--replicas needs --wire: replicas are reached over their release listeners"}
			}
			ctx, cancel := signalContext()
			defer cancel()
			res, err := benchRelease(ctx, benchOptions{guests: *guests, concurrency: *conc, chips: *chips, inService: *inService, rate: *rate, rateOfCeiling: *rateOfCeiling, cold: *cold, progress: env.stderr, cpuProfile: *cpuProfile,
				database: *database, wire: *overWire, replicas: *replicas})
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(env.stdout, res)
			}
			admitted := "no admission bound"
			if res.InService > 0 {
				admitted = fmt.Sprintf("at most %d admitted", res.InService)
			}
			endToEnd := fmt.Sprintf("call to answer; at least %d/throughput = %.0f ms", res.Concurrency, 1000*float64(res.Concurrency)/max(res.PerSecond, 1))
			if res.OfferedRate > 0 {
				admitted += fmt.Sprintf(", open loop at %.0f boots/s", res.OfferedRate)
				endToEnd = "from each guest's scheduled boot to its answer"
			}
			fmt.Fprintf(env.stdout, `Boot storm: %d guests, %d concurrent, %d CPU cores, %s
  console:         %s, %s, %d replica(s)
  releases:        %d ok, %d errors in %.2f s
  throughput:      %.0f releases/s
  end-to-end:      p50 %.2f ms, p99 %.2f ms, max %.2f ms (%s)
  service time:    p50 %.2f ms, p99 %.2f ms, max %.2f ms (CPU slot to durable decision and sealed secret)
  CPU:             %.0f µs per release, cores %.0f %% busy
  ECDSA P-384:     %.0f verifies/s on %d cores (raw, same run)
  ratio:           %.0f %% of the raw verify rate
`, res.Guests, res.Concurrency, res.Cores, admitted, res.Mode, res.Database, res.Replicas, res.OK, res.Errors, res.Seconds, res.PerSecond,
				res.P50ms, res.P99ms, res.MaxMs, endToEnd,
				res.ServiceP50ms, res.ServiceP99ms, res.ServiceMaxMs,
				res.CPUPerReleaseUs, 100*res.CPUBusy,
				res.ECDSAPerSecond, res.Cores, 100*res.Ratio)
			if res.Errors > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("%d releases failed (first: %s)", res.Errors, res.FirstError)}
			}
			return nil
		}
	},
}

type benchOptions struct {
	guests, concurrency, chips int
	inService                  int     // 0: the engine's default
	rate                       float64 // open-loop arrivals per second; 0: closed loop
	rateOfCeiling              float64 // if set, rate is this share of the raw ECDSA rate measured in the run
	cold                       bool    // no verification of each chip before the storm
	progress                   io.Writer
	cpuProfile                 string
	ecdsaFor                   time.Duration // zero: 2 s
	// database is where the bench console lives: "" for a SQLite file in
	// a temporary directory, else a SQLite path or a PostgreSQL URL
	// (store.Open) holding no console yet.
	database string
	// wire sends every request through a real release API listener
	// (TLS 1.3, pinned, HTTP) as agents do, instead of calling the engine.
	wire bool
	// replicas is how many consoles serve the storm on the one database,
	// each with its own store handle, key service, engine and listener
	// (wire only); 0 or 1: one.
	replicas int
}

// BenchResult is what `keyholder bench release` reports.
type BenchResult struct {
	// Mode is "in-process" (the engine called directly) or "wire" (HTTP
	// over pinned TLS to the release listener).
	Mode string `json:"mode"`
	// Database is "sqlite" or "postgres"; Replicas how many consoles
	// served the storm.
	Database string `json:"database"`
	Replicas int    `json:"replicas"`
	// OfferedRate is the open-loop arrival rate (releases per second); 0
	// for a closed loop.
	OfferedRate float64 `json:"offered_rate,omitempty"`
	Guests      int     `json:"guests"`
	Concurrency int     `json:"concurrency"`
	Cores       int     `json:"cores"`
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	InService   int     `json:"in_service"` // admission bound; 0: none
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"releases_per_second"`
	// End-to-end latency: from a guest's call until its answer, waiting
	// for admission included.
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Service time: from admission until the decision is durable and the
	// secret sealed, measured inside the engine.
	ServiceP50ms float64 `json:"service_p50_ms"`
	ServiceP99ms float64 `json:"service_p99_ms"`
	ServiceMaxMs float64 `json:"service_max_ms"`
	// CPUPerReleaseUs is the process's CPU time during the storm (every
	// goroutine: engine, simulated guests' calls, runtime) per release, in
	// µs; cores / CPUPerRelease is the rate the machine could sustain if
	// nothing ever waited. 0 where it is not measured.
	CPUPerReleaseUs float64 `json:"cpu_per_release_us,omitempty"`
	// CPUBusy is that CPU time as a share of all cores over the storm.
	CPUBusy        float64 `json:"cpu_busy,omitempty"`
	ECDSAPerSecond float64 `json:"ecdsa_p384_verifies_per_second"`
	Ratio          float64 `json:"ratio"`
}

func benchRelease(ctx context.Context, o benchOptions) (*BenchResult, error) {
	logf := func(format string, a ...any) {
		if o.progress != nil {
			fmt.Fprintf(o.progress, format+"\n", a...)
		}
	}
	if o.replicas < 1 {
		o.replicas = 1
	}
	if o.replicas > 1 && !o.wire {
		return nil, errors.New("--replicas needs --wire: replicas are reached over their listeners")
	}
	dir, err := os.MkdirTemp("", "keyholder-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	location := o.database
	if benchDatabaseKind(location) == "postgres" && !storeSpeaksPostgres {
		return nil, errors.New("this build's store does not open PostgreSQL yet: give --database a SQLite file")
	}
	if location == "" {
		location = filepath.Join(dir, "keyholder.db")
	}
	// One process alone may hold a SQLite file exclusively; replicas share it.
	db, err := store.Open(ctx, location, store.Options{Exclusive: o.replicas == 1})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	// The officer passphrase's Argon2id cost is not what is measured.
	custOpts := custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, CheckpointEvery: 1 << 30}
	cust := custody.New(db, custOpts)
	pass := []byte("benchmark passphrase")
	if _, err := cust.Init(ctx, "bench", pass); err != nil {
		if errors.Is(err, custody.ErrInitialized) {
			return nil, fmt.Errorf("bench database %s holds a console already; give an empty one: %w", db.Path(), err)
		}
		return nil, err
	}
	logf("setting up %d volumes and guests on %d simulated chips…", o.guests, o.chips)
	product := attest.Genoa
	tcb := sim.DefaultTCB(product)
	ftcb, _ := json.Marshal(fleet.TCB{Bootloader: tcb.Bootloader, TEE: tcb.TEE, SNP: tcb.SNP, Microcode: tcb.Microcode})
	chips := make([]*sim.Chip, o.chips)
	for i := range chips {
		if chips[i], err = sim.NewChip(product, fmt.Sprintf("bench-chip-%d", i)); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	vols := make([]string, o.guests)
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO images(id, name, created_at) VALUES ('img_bench', 'bench', ?)`, store.Time(now)); err != nil {
			return err
		}
		if _, err := attest.PutReferenceTx(ctx, tx, now, "img_bench", &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "bench", ""); err != nil {
			return err
		}
		for i := range vols {
			id, _, secret, err := cust.CreateVolumeTx(ctx, tx, "officer:bench", "img_bench", fmt.Sprintf("bench-%05d", i))
			clear(secret)
			if err != nil {
				return err
			}
			vols[i] = id
			vm := fmt.Sprintf("bench-%05d", i)
			chip := hex.EncodeToString(chips[i%len(chips)].ID())
			at := store.Time(now)
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO vms(id, name, image_id, volume_id, status, product, chip_id, measurement, tcb, generation, simulated, last_evidence_at, created_at, approved_tcb, last_release_at, report_id)
					VALUES (?, ?, 'img_bench', ?, 'verified', ?, ?, ?, ?, 1, 1, ?, ?, ?, ?, ?)`,
					[]any{vm, vm, id, string(product), chip, hex.EncodeToString(sim.DemoMeasurement), string(ftcb), at, at, string(ftcb), at, fmt.Sprintf("old-launch-%d", i)}},
				{`INSERT INTO vm_chips(vm_id, chip_id, first_seen) VALUES (?, ?, ?)`, []any{vm, chip, at}},
				{`INSERT INTO vm_measurements(vm_id, measurement, first_seen) VALUES (?, ?, ?)`, []any{vm, hex.EncodeToString(sim.DemoMeasurement), at}},
			} {
				if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench setup: %w", err)
	}
	svc := make([]time.Duration, o.guests)
	var nsvc atomic.Int64
	serviceTime := func(d time.Duration) {
		if i := nsvc.Add(1) - 1; i < int64(len(svc)) {
			svc[i] = d
		}
	}
	// The consoles: the first over db and cust, each further replica over
	// its own store handle and key service (unlocked by the officer, as
	// at a replica's start), as separate serve processes have them.
	reps := make([]*benchReplica, o.replicas)
	for r := range reps {
		rdb, rcust := db, cust
		if r > 0 {
			if rdb, err = store.Open(ctx, location, store.Options{}); err != nil {
				return nil, err
			}
			defer rdb.Close()
			rcust = custody.New(rdb, custOpts)
			if _, err := rcust.Unlock(ctx, "bench", pass); err != nil {
				return nil, err
			}
			defer rcust.Close(ctx)
		}
		v, err := attest.NewVerifier(ctx, attest.Options{TrustSimulatedRoot: true, SimulatedRoots: sim.Root().TrustedRoots()})
		if err != nil {
			return nil, err
		}
		av := release.AttestVerifier{Verifier: v, References: attest.NewReferences(rdb)}
		eng, err := release.New(release.Config{DB: rdb, Secrets: rcust, ChallengeTTL: 3 * time.Hour, MaxWaiting: o.guests + 16,
			Verifier: av, MaxInService: o.inService, ServiceTime: serviceTime})
		if err != nil {
			return nil, err
		}
		reps[r] = &benchReplica{eng: eng, av: av}
		if o.wire {
			stop, err := reps[r].listen(dir, o.concurrency)
			if err != nil {
				return nil, err
			}
			defer stop()
		}
	}
	mode := "in-process"
	if o.wire {
		mode = "wire"
		logf("%d release API listener(s) on loopback (TLS 1.3, pinned)", len(reps))
	}

	logf("signing %d reports beforehand (not timed)…", o.guests)
	reqs := make([]*wire.ReleaseRequest, o.guests)
	keys := make([]hpke.PrivateKey, o.guests)
	var wg sync.WaitGroup
	var prepErr atomic.Value
	next := atomic.Int64{}
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.guests {
					return
				}
				g := &agentsim.Guest{Chip: chips[i%len(chips)]}
				g.NewLaunch()
				ch, err := reps[i%len(reps)].challenge(ctx)
				if err != nil {
					prepErr.Store(err)
					return
				}
				k, pub, _ := wire.NewKeyPair()
				req := &wire.ReleaseRequest{Version: wire.Version, VMID: fmt.Sprintf("bench-%05d", i), VolumeID: vols[i], Purpose: wire.PurposeBoot, Generation: 1,
					Nonce: ch.Nonce, HPKEPublicKey: pub}
				rd, _ := wire.Transcript(req.Binding(nil))
				ev, err := g.Evidence(ctx, rd)
				if err != nil {
					prepErr.Store(err)
					return
				}
				keys[i] = k
				req.Evidence = ev
				reqs[i] = req
			}
		}()
	}
	wg.Wait()
	if err, _ := prepErr.Load().(error); err != nil {
		return nil, err
	}

	// The fleet is known: a running console has verified each chip's VCEK
	// chain before (and made its signature table on the second report).
	// The storm then measures the steady state, not the console's first
	// minute after a restart (--cold).
	if !o.cold {
		logf("verifying two reports per chip beforehand (a console that has seen the fleet; not timed)…")
		for _, rep := range reps {
			for _, c := range chips {
				g := &agentsim.Guest{Chip: c}
				for range 2 {
					g.NewLaunch()
					var rd [64]byte
					rand.Read(rd[:])
					ev, err := g.Evidence(ctx, rd)
					if err != nil {
						return nil, err
					}
					if _, err := rep.av.Verify(ctx, ev, release.Image{ID: "img_bench"}, rd); err != nil {
						return nil, fmt.Errorf("bench warm-up: %w", err)
					}
				}
			}
		}
	}

	logf("measuring raw ECDSA P-384 verify on %d cores…", runtime.NumCPU())
	if o.ecdsaFor <= 0 {
		o.ecdsaFor = 2 * time.Second
	}
	ecdsaRate := ecdsaCeiling(o.ecdsaFor)

	logf("storm: %d releases, %d in flight…", o.guests, o.concurrency)
	lat := make([]time.Duration, o.guests)
	rels := make([]*wire.Release, o.guests)
	errs := make([]error, o.guests)
	next.Store(0)
	// The profile covers the storm only, not the untimed checks after it.
	var prof *os.File
	if o.cpuProfile != "" {
		if prof, err = os.Create(o.cpuProfile); err != nil {
			return nil, err
		}
		defer prof.Close()
		if err := pprof.StartCPUProfile(prof); err != nil {
			return nil, err
		}
	}
	// Open loop (a rate): guest i boots at start + i/rate whether or not
	// earlier guests have their answers, and its latency counts from that
	// moment, so time spent waiting for one of the --concurrency slots is
	// not hidden (no coordinated omission). Closed loop: every slot sends
	// its next request as soon as its last one is answered.
	rate := o.rate
	if o.rateOfCeiling > 0 {
		rate = o.rateOfCeiling * ecdsaRate
	}
	cpu0 := processCPU()
	start := time.Now()
	for w := 0; w < o.concurrency; w++ {
		// Over the wire, each slot is a guest's agent: its own pinned
		// HTTPS client per replica (a connection kept alive between its
		// requests, as from an agent's challenge to its release).
		send := make([]func(*wire.ReleaseRequest) (*wire.Release, error), len(reps))
		for r, rep := range reps {
			if send[r], err = rep.sender(ctx); err != nil {
				return nil, err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.guests {
					return
				}
				t0 := time.Now()
				if rate > 0 {
					t0 = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					time.Sleep(time.Until(t0))
				}
				rels[i], errs[i] = send[i%len(reps)](reqs[i])
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	if prof != nil {
		pprof.StopCPUProfile()
	}

	// Untimed: every answer must be a routine release that opens.
	res := &BenchResult{Mode: mode, Database: benchDatabaseKind(location), Replicas: len(reps), OfferedRate: rate, Guests: o.guests, Concurrency: o.concurrency, Cores: runtime.NumCPU(), InService: o.inService, Seconds: elapsed.Seconds(), ECDSAPerSecond: ecdsaRate}
	for i := range rels {
		err := errs[i]
		if err == nil && (rels[i].Status != wire.StatusReleased || rels[i].Class != string(release.ClassRoutine)) {
			err = fmt.Errorf("%s answered %s/%s", reqs[i].VMID, rels[i].Status, rels[i].Class)
		}
		if err == nil {
			var s []byte
			s, err = wire.Open(keys[i], rels[i].RequestID, vols[i], 1, rels[i].Sealed)
			clear(s)
		}
		if err != nil {
			if res.Errors == 0 {
				res.FirstError = err.Error()
			}
			res.Errors++
			continue
		}
		res.OK++
	}
	pct := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	slices.Sort(lat)
	res.P50ms, res.P99ms, res.MaxMs = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1)
	svc = svc[:min(int(nsvc.Load()), len(svc))]
	slices.Sort(svc)
	res.ServiceP50ms, res.ServiceP99ms, res.ServiceMaxMs = pct(svc, 0.50), pct(svc, 0.99), pct(svc, 1)
	res.PerSecond = float64(res.OK) / elapsed.Seconds()
	if cpu > 0 {
		res.CPUPerReleaseUs = float64(cpu.Microseconds()) / float64(o.guests)
		res.CPUBusy = cpu.Seconds() / (elapsed.Seconds() * float64(res.Cores))
	}
	if ecdsaRate > 0 {
		res.Ratio = res.PerSecond / ecdsaRate
	}
	var n int
	db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'release' AND decision = 'released'`).Scan(&n)
	if n != res.OK {
		return res, errors.New("audit log does not hold one release entry per release")
	}
	return res, nil
}

// ecdsaCeiling verifies one P-384 signature on every core for d and
// returns verifies per second.
func ecdsaCeiling(d time.Duration) float64 {
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	h := sha512.Sum384([]byte("keyholder bench"))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
	var total atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	start := time.Now()
	for c := 0; c < runtime.NumCPU(); c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for time.Now().Before(stop) {
				for j := 0; j < 16; j++ {
					ecdsa.VerifyASN1(&k.PublicKey, h[:], sig)
				}
				n += 16
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds()
}
