// Package bootstorm measures the release engine under a boot storm: every
// guest of a known, SIMULATED fleet reboots at once against a fresh console
// in a temporary directory (`keyholder bench release`).
package bootstorm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha512"
	"database/sql"
	"encoding/hex"
	"errors"
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
	"keyholder/backend/images"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

// Options shape a storm.
type Options struct {
	// Guests boot, Concurrency at a time, on Chips simulated chips.
	Guests, Concurrency, Chips int
	InService                  int           // requests the engine admits at once; 0: the engine's default
	Rate                       float64       // open-loop arrivals per second; 0: closed loop
	RateOfCeiling              float64       // if set, the rate is this share of the raw ECDSA rate measured in the run
	Cold                       bool          // no verification of each chip before the storm
	Progress                   io.Writer     // where progress lines go; nil: nowhere
	CPUProfile                 string        // write a CPU profile of the storm to this file
	ECDSAFor                   time.Duration // how long the ECDSA ceiling is measured; zero: 2 s
	// Database is where the bench console lives: "" for a SQLite file in
	// a temporary directory, else a SQLite path or a PostgreSQL URL
	// (store.Open) holding no console yet.
	Database string
	// Wire sends every request through a real release API listener (TLS
	// 1.3, pinned, HTTP) as agents do, instead of calling the engine.
	Wire bool
	// Replicas is how many consoles serve the storm on the one database,
	// each with its own store handle, key service, engine and listener
	// (Wire only); 0 or 1: one.
	Replicas int
	// WarmUp guests more, of the same fleet, boot before the storm, not
	// timed, Concurrency at a time, spread over the consoles as the storm
	// is: the storm then meets consoles that have served releases before
	// (their database connections open, their statements prepared), as a
	// console serving a fleet has, not the first requests after a start.
	WarmUp int
}

// Result is what `keyholder bench release` reports.
type Result struct {
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

// Run sets up a console with a known fleet of o.Guests simulated guests,
// signs their evidence beforehand (untimed), then lets them all reboot
// against the release engine and measures. Every answer must be a routine
// release whose secret opens, and the audit log must hold one release
// entry per release; otherwise Run fails (with the result so far).
func Run(ctx context.Context, o Options) (*Result, error) {
	logf := func(format string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", a...)
		}
	}
	if o.Replicas < 1 {
		o.Replicas = 1
	}
	if o.Replicas > 1 && !o.Wire {
		return nil, errors.New("replicas need the wire mode: they are reached over their listeners")
	}
	location := o.Database
	dir, err := os.MkdirTemp("", "keyholder-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if location == "" {
		location = filepath.Join(dir, "keyholder.db")
	}
	// One process alone may hold a SQLite file exclusively; replicas share it.
	db, err := store.Open(ctx, location, store.Options{Exclusive: o.Replicas == 1})
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
	logf("setting up %d volumes and guests on %d simulated chips…", o.Guests, o.Chips)
	product := attest.Genoa
	tcb := sim.DefaultTCB(product)
	ftcb := fleet.TCB{Bootloader: tcb.Bootloader, TEE: tcb.TEE, SNP: tcb.SNP, Microcode: tcb.Microcode}
	chips := make([]*sim.Chip, o.Chips)
	for i := range chips {
		if chips[i], err = sim.NewChip(product, fmt.Sprintf("bench-chip-%d", i)); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	// Guests [0, WarmUp) warm the consoles up; the storm's are the rest.
	if o.WarmUp < 0 {
		o.WarmUp = 0
	}
	total := o.WarmUp + o.Guests
	vols := make([]string, total)
	var imageID string
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		im, err := images.CreateTx(ctx, tx, now, "bench", "", "bench")
		if err != nil {
			return err
		}
		imageID = im.ID
		if _, err := attest.PutReferenceTx(ctx, tx, now, imageID, &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "bench", ""); err != nil {
			return err
		}
		for i := range vols {
			id, gen, secret, err := cust.CreateVolumeTx(ctx, tx, "officer:bench", imageID, fmt.Sprintf("bench-%05d", i))
			clear(secret)
			if err != nil {
				return err
			}
			vols[i] = id
			// The guest booted before, as the engine records a release:
			// its chip, measurement, TCB and launch are approved and it is
			// bound to its volume.
			if _, err := fleet.Record(ctx, tx, fleet.Observation{At: now, VMID: fmt.Sprintf("bench-%05d", i), VolumeID: id, ImageID: imageID,
				Kind: "release", Result: fleet.ResultReleased, Status: fleet.Verified, Class: string(release.ClassRoutine),
				Authentic: true, Product: string(product), Signer: "VCEK", ChipID: hex.EncodeToString(chips[i%len(chips)].ID()),
				Measurement: hex.EncodeToString(sim.DemoMeasurement), ReportID: fmt.Sprintf("old-launch-%d", i), TCB: ftcb, Simulated: true,
				Released: true, Generation: gen, Create: true}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench setup: %w", err)
	}
	// On PostgreSQL, a console that has served its fleet for a minute has
	// had its tables vacuumed and analysed by autovacuum, which does so
	// within a minute of a bulk change like the setup above. A database
	// loaded a second ago has no planner statistics yet and every page's
	// visibility still to settle: the storm's first second then ran at a
	// fraction of the steady rate whenever autovacuum had not come by
	// (bench release --wire, 2 replicas at 700/s: requests of the first
	// 0.5-1.5 s averaged 30-300 ms, the rest 10-15 ms), and that second
	// alone set the p99. What autovacuum would have done is done here, untimed.
	// (SQLite keeps no such statistics unless told to, and the console
	// does not: nothing to do there.)
	if db.Dialect() == store.Postgres {
		if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
			return nil, fmt.Errorf("bench setup: vacuum: %w", err)
		}
	}
	svc := make([]time.Duration, o.Guests)
	var nsvc atomic.Int64
	serviceTime := func(d time.Duration) {
		if i := nsvc.Add(1) - 1; i < int64(len(svc)) {
			svc[i] = d
		}
	}
	// The consoles: the first over db and cust, each further replica over
	// its own store handle and key service (unlocked by the officer, as
	// at a replica's start), as separate serve processes have them.
	reps := make([]*replica, o.Replicas)
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
		eng, err := release.New(release.Config{DB: rdb, Secrets: rcust, ChallengeTTL: 3 * time.Hour, MaxWaiting: o.Guests + 16,
			Verifier: av, MaxInService: o.InService, ServiceTime: serviceTime})
		if err != nil {
			return nil, err
		}
		reps[r] = &replica{eng: eng, av: av}
		if o.Wire {
			stop, err := reps[r].listen(dir, o.Concurrency)
			if err != nil {
				return nil, err
			}
			defer stop()
		}
	}
	mode := "in-process"
	if o.Wire {
		mode = "wire"
		logf("%d release API listener(s) on loopback (TLS 1.3, pinned)", len(reps))
	}

	logf("signing %d reports beforehand (not timed)…", total)
	reqs := make([]*wire.ReleaseRequest, total)
	keys := make([]hpke.PrivateKey, total)
	var wg sync.WaitGroup
	var prepErr atomic.Value
	next := atomic.Int64{}
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
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
	if !o.Cold {
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
					if _, err := rep.av.Verify(ctx, ev, release.ImageRef{ID: imageID}, rd); err != nil {
						return nil, fmt.Errorf("bench warm-up: %w", err)
					}
				}
			}
		}
	}

	logf("measuring raw ECDSA P-384 verify on %d cores…", runtime.NumCPU())
	if o.ECDSAFor <= 0 {
		o.ECDSAFor = 2 * time.Second
	}
	ecdsaRate := ecdsaCeiling(o.ECDSAFor)

	// The storm's slots. Over the wire, each slot is a guest's agent: its
	// own pinned HTTPS client per replica (a connection kept alive between
	// its requests, as from an agent's challenge to its release).
	slots := make([][]func(*wire.ReleaseRequest) (*wire.Release, error), o.Concurrency)
	for w := range slots {
		slots[w] = make([]func(*wire.ReleaseRequest) (*wire.Release, error), len(reps))
		for r, rep := range reps {
			if slots[w][r], err = rep.sender(ctx); err != nil {
				return nil, err
			}
		}
	}
	if o.WarmUp > 0 {
		logf("warming up: %d releases, %d in flight (not timed)…", o.WarmUp, o.Concurrency)
		if err := warmUp(slots, reqs[:o.WarmUp], keys, vols); err != nil {
			return nil, fmt.Errorf("bench warm-up: %w", err)
		}
	}

	nsvc.Store(0) // the warm-up's service times are not the storm's
	logf("storm: %d releases, %d in flight…", o.Guests, o.Concurrency)
	lat := make([]time.Duration, o.Guests)
	rels := make([]*wire.Release, o.Guests)
	errs := make([]error, o.Guests)
	next.Store(0)
	// The profile covers the storm only, not the untimed checks after it.
	var prof *os.File
	if o.CPUProfile != "" {
		if prof, err = os.Create(o.CPUProfile); err != nil {
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
	rate := o.Rate
	if o.RateOfCeiling > 0 {
		rate = o.RateOfCeiling * ecdsaRate
	}
	cpu0 := processCPU()
	start := time.Now()
	for w := 0; w < o.Concurrency; w++ {
		send := slots[w]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.Guests {
					return
				}
				t0 := time.Now()
				if rate > 0 {
					t0 = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					time.Sleep(time.Until(t0))
				}
				g := o.WarmUp + i
				rels[i], errs[i] = send[g%len(reps)](reqs[g])
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
	res := &Result{Mode: mode, Database: DatabaseKind(location), Replicas: len(reps), OfferedRate: rate, Guests: o.Guests, Concurrency: o.Concurrency, Cores: runtime.NumCPU(), InService: o.InService, Seconds: elapsed.Seconds(), ECDSAPerSecond: ecdsaRate}
	for i := range rels {
		err := errs[i]
		if err == nil {
			g := o.WarmUp + i
			err = checkRelease(reqs[g], rels[i], keys[g], vols[g])
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
		res.CPUPerReleaseUs = float64(cpu.Microseconds()) / float64(o.Guests)
		res.CPUBusy = cpu.Seconds() / (elapsed.Seconds() * float64(res.Cores))
	}
	if ecdsaRate > 0 {
		res.Ratio = res.PerSecond / ecdsaRate
	}
	var n int
	db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'release' AND decision = 'released'`).Scan(&n)
	if n != o.WarmUp+res.OK {
		return res, errors.New("audit log does not hold one release entry per release")
	}
	return res, nil
}

// checkRelease checks that rel is a routine release to req whose secret
// opens with key.
func checkRelease(req *wire.ReleaseRequest, rel *wire.Release, key hpke.PrivateKey, vol string) error {
	if rel.Status != wire.StatusReleased || rel.Class != string(release.ClassRoutine) {
		return fmt.Errorf("%s answered %s/%s", req.VMID, rel.Status, rel.Class)
	}
	s, err := wire.Open(key, rel.RequestID, vol, 1, rel.Sealed)
	clear(s)
	return err
}

// warmUp releases reqs through the storm's slots (guest i through
// console i mod the consoles), every slot at once, so that the storm's
// slots keep their connections from it; every one must be a routine
// release that opens.
func warmUp(slots [][]func(*wire.ReleaseRequest) (*wire.Release, error), reqs []*wire.ReleaseRequest, keys []hpke.PrivateKey, vols []string) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for _, send := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				rel, err := send[i%len(send)](reqs[i])
				if err == nil {
					err = checkRelease(reqs[i], rel, keys[i], vols[i])
				}
				if err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return nil
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
