package cli

import (
	"context"
	"crypto/sha512"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

var demoCommand = &command{
	name:  "demo",
	short: "run the console with a SIMULATED fleet on a throwaway data directory",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder demo [--guests 25] [--web] [--listen 127.0.0.1:8420] [--keep]

Starts a console on a fresh temporary data directory, trusting the simulated
AMD root (everything is labelled SIMULATED), with a fleet of simulated
confidential VMs on several simulated Milan, Genoa and Turin chips and three
images. Over the first two minutes they boot, heartbeat, migrate to a new
chip, restore an old disk generation, meet a TCB update, and a few fail
(debug policy, unknown measurement, a replayed request, a guest that stops
heartbeating), so every screen has live data and approvals are waiting.
Log in as officer "demo" with the passphrase the command prints.

--web serves the console to a browser (as 'keyholder serve'); without it the
desktop window opens where there is a display.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		guests := fs.Int("guests", 25, "number of simulated guests")
		web := fs.Bool("web", false, "serve the console to a browser instead of opening the desktop window")
		listen := fs.String("listen", "127.0.0.1:8420", "address of the web console (--web)")
		keep := fs.Bool("keep", false, "keep the temporary data directory")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[0])}
			}
			// All simulated guests share one source address, whose request
			// rate the release API limits (20/s): 100 guests heartbeating
			// every 15 s stay well within it.
			if *guests < 4 || *guests > 100 {
				return &exitError{code: 2, msg: "--guests must be between 4 and 100"}
			}
			return runDemo(env, *guests, *web, *listen, *keep)
		}
	},
}

const (
	demoOfficer    = "demo"
	demoPassphrase = "keyholder demo passphrase"
)

func runDemo(env *cliEnv, guests int, web bool, listen string, keep bool) error {
	dir, err := os.MkdirTemp("", "keyholder-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(env.stdout, "Demo data directory: %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	denv := *env
	denv.dataDir = dir
	// A throwaway console: a cheap Argon2id for the demo officer.
	if custodyOptions.KDF == (custody.KDFParams{}) {
		custodyOptions.KDF = custody.KDFParams{Time: 1, MemoryKiB: 16 << 10, Threads: 1}
	}
	fl, err := setupDemo(&denv, guests)
	if err != nil {
		return fmt.Errorf("demo setup: %w", err)
	}
	fl.log = newLogger(env.stderr)
	fmt.Fprintf(env.stdout, "SIMULATED demo: %d guests. Log in as officer %q with passphrase %q.\n", guests, demoOfficer, demoPassphrase)
	hooks := consoleHooks{
		unlock: func(ctx context.Context, cust *custody.Service) error {
			_, err := cust.Unlock(ctx, demoOfficer, []byte(demoPassphrase))
			return err
		},
		started: fl.run,
	}
	if !web {
		if hasDisplay() {
			return runDesktop(&denv, true, "127.0.0.1:0", hooks)
		}
		fmt.Fprintln(env.stdout, "No display: serving the demo console to a browser (as with --web).")
	}
	return serve(&denv, serveOptions{listen: listen, releaseListen: "127.0.0.1:0", devSim: true, hooks: hooks})
}

// demoGuest is one simulated VM and what the scenario does with it.
type demoGuest struct {
	id, vol, image string
	sim            *agentsim.Guest
	gen            atomic.Int64
	autoApprove    atomic.Bool
	running        atomic.Bool  // a release is in progress
	epoch          atomic.Int64 // bumping it stops the current heartbeat loop
}

type demoFleet struct {
	guests []*demoGuest
	// claimants claim the first boot of demoNewImage's volume: the real
	// guest and a stranger. vlek is a guest whose reports a VLEK signs.
	claimants []*demoGuest
	vlek      *demoGuest
	log       *slog.Logger
	eng       *release.Service
	client    *agent.Client
	ctx       context.Context
	wg        sync.WaitGroup
}

var demoImages = []struct{ id, name string }{{"img_demo_web", "web-frontend"}, {"img_demo_db", "postgres"}, {"img_demo_batch", "batch-worker"}}

// demoNewImage has no reference values: its first boot pins them, and two
// launches claim it.
var demoNewImage = struct{ id, name string }{"img_demo_new", "new-service"}

func demoMeasurement(image string) []byte {
	if image == "img_demo_web" {
		return sim.DemoMeasurement
	}
	h := sha512.Sum384([]byte("keyholder demo measurement " + image))
	return h[:]
}

var demoChips = []struct {
	p    attest.Product
	seed string
}{{attest.Genoa, "genoa-a"}, {attest.Milan, "milan-a"}, {attest.Genoa, "genoa-b"}, {attest.Turin, "turin-a"}, {attest.Milan, "milan-b"}, {attest.Genoa, "genoa-c"}}

// setupDemo initialises the console: the demo officer, three images with
// reference values, one volume per guest, a 15 s heartbeat interval.
func setupDemo(env *cliEnv, n int) (*demoFleet, error) {
	ctx := context.Background()
	db, err := openStore(ctx, env, false)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	cust := custody.New(db, custodyOptions)
	if _, err := cust.Init(ctx, demoOfficer, []byte(demoPassphrase)); err != nil {
		return nil, err
	}
	defer cust.Lock()
	refs := attest.NewReferences(db)
	for _, im := range demoImages {
		if _, err := db.ExecContext(ctx, `INSERT INTO images(id, name, description, created_at, created_by) VALUES (?, ?, 'SIMULATED demo image', ?, 'officer:demo')`,
			im.id, im.name, store.Time(time.Now())); err != nil {
			return nil, err
		}
		if _, err := refs.Put(ctx, im.id, &attest.ReferenceValues{Measurements: []attest.Hex{demoMeasurement(im.id)}}, "officer:demo", "demo reference values"); err != nil {
			return nil, err
		}
	}
	if err := release.SetPolicy(ctx, db, "officer:demo", "", &release.Policy{HeartbeatInterval: release.Duration(15 * time.Second)}); err != nil {
		return nil, err
	}
	fl := &demoFleet{}
	for i := 0; i < n; i++ {
		image := demoImages[0].id
		switch i % 9 {
		case 4:
			image = demoImages[1].id
		case 7:
			image = demoImages[2].id
		}
		g := &demoGuest{id: fmt.Sprintf("vm-demo-%02d", i+1), image: image}
		vol, gen, secret, err := cust.CreateVolume(ctx, "officer:demo", image, g.id+"-disk")
		clear(secret)
		if err != nil {
			return nil, err
		}
		g.vol = vol
		g.gen.Store(int64(gen))
		c := demoChips[i%len(demoChips)]
		if g.sim, err = agentsim.NewGuest(c.p, c.seed); err != nil {
			return nil, err
		}
		g.sim.SetMeasurement(demoMeasurement(image))
		g.autoApprove.Store(i < n-3) // the last three first boots wait for you
		fl.guests = append(fl.guests, g)
	}
	if err := setupDemoTrust(ctx, db, cust, fl); err != nil {
		return nil, err
	}
	return fl, nil
}

// setupDemoTrust adds the guest-trust scenarios: an image without reference
// values with one volume whose first boot the real guest and a stranger
// claim, and a guest of the web image whose reports a VLEK signs.
func setupDemoTrust(ctx context.Context, db *store.DB, cust *custody.Service, fl *demoFleet) error {
	if _, err := db.ExecContext(ctx, `INSERT INTO images(id, name, description, created_at, created_by) VALUES (?, ?, 'SIMULATED demo image without reference values', ?, 'officer:demo')`,
		demoNewImage.id, demoNewImage.name, store.Time(time.Now())); err != nil {
		return err
	}
	newGuest := func(id, image, volName string, p attest.Product, chip string, measurement []byte) (*demoGuest, error) {
		g := &demoGuest{id: id, image: image}
		var err error
		if g.sim, err = agentsim.NewGuest(p, chip); err != nil {
			return nil, err
		}
		g.sim.SetMeasurement(measurement)
		if volName != "" {
			vol, gen, secret, err := cust.CreateVolume(ctx, "officer:demo", image, volName)
			clear(secret)
			if err != nil {
				return nil, err
			}
			g.vol = vol
			g.gen.Store(int64(gen))
		}
		return g, nil
	}
	real, err := newGuest("vm-new-01", demoNewImage.id, "vm-new-01-disk", attest.Genoa, "genoa-c", demoMeasurement(demoNewImage.id))
	if err != nil {
		return err
	}
	stranger, err := newGuest("vm-intruder", demoNewImage.id, "", attest.Milan, "intruder-host", demoMeasurement("a stranger's build"))
	if err != nil {
		return err
	}
	stranger.vol = real.vol
	stranger.gen.Store(real.gen.Load())
	fl.claimants = []*demoGuest{real, stranger}
	if fl.vlek, err = newGuest("vm-vlek-01", demoImages[0].id, "vm-vlek-01-disk", attest.Genoa, "vlek-host", demoMeasurement(demoImages[0].id)); err != nil {
		return err
	}
	fl.vlek.sim.VLEK = true
	fl.vlek.autoApprove.Store(true)
	return nil
}

// run plays the scenario once the release API listens.
func (fl *demoFleet) run(ctx context.Context, eng *release.Service) {
	addr, pin := eng.Listener()
	c, err := agent.NewClient("https://"+addr, pin)
	if err != nil {
		fl.log.Error("demo fleet", "err", err)
		return
	}
	fl.ctx, fl.eng, fl.client = ctx, eng, c
	n := len(fl.guests)
	at := func(d time.Duration, what string, fn func()) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
			fl.log.Info("demo: "+what, "simulated", true)
			fn()
		}
	}
	// Boots, staggered.
	for _, g := range fl.guests {
		fl.boot(g, 0)
		select {
		case <-ctx.Done():
			return
		case <-time.After(700 * time.Millisecond):
		}
	}
	g := func(i int) *demoGuest { return fl.guests[i%n] }
	at(time.Second, "two launches claim the first boot of an image without reference values; a VLEK guest boots", func() {
		for _, c := range fl.claimants {
			fl.boot(c, 0)
		}
		go fl.vlekScenario()
	})
	at(10*time.Second, "a guest reboots with the debug policy bit", func() {
		g(1).sim.SetDebug(true)
		g(1).sim.NewLaunch()
		fl.boot(g(1), 0)
	})
	at(5*time.Second, "a guest migrates to a new chip", func() {
		g(2).sim.MoveTo(attest.Genoa, "genoa-new-host")
		g(2).autoApprove.Store(false)
		fl.reboot(g(2))
	})
	at(5*time.Second, "a guest boots an image update whose measurement nobody approved", func() {
		g(5).sim.SetMeasurement(demoMeasurement("unapproved build"))
		fl.reboot(g(5))
	})
	at(5*time.Second, "a request is replayed", func() { fl.replay(g(7)) })
	at(5*time.Second, "a guest rotates its volume key", func() {
		g(3).autoApprove.Store(true)
		fl.rotate(g(3))
	})
	at(10*time.Second, "a guest is restored from an old backup", func() {
		gr := g(3)
		gr.autoApprove.Store(false)
		gr.epoch.Add(1)
		gr.sim.NewLaunch()
		fl.boot(gr, 1)
	})
	at(10*time.Second, "the hosts of chip genoa-b get a firmware (TCB) update", func() {
		for i, gg := range fl.guests {
			if demoChips[i%len(demoChips)].seed != "genoa-b" {
				continue
			}
			t := sim.DefaultTCB(attest.Genoa)
			t.SNP++
			gg.sim.SetTCB(&t)
			gg.autoApprove.Store(i%2 == 0)
			fl.reboot(gg)
		}
	})
	at(10*time.Second, "a guest stops sending heartbeats (it will turn stale)", func() { g(8).epoch.Add(1) })
	at(30*time.Second, "the debug guest is relaunched correctly", func() {
		g(1).sim.SetDebug(false)
		fl.reboot(g(1))
	})
	<-ctx.Done()
}

// vlekScenario boots the VLEK guest (its first boot is approved), then,
// once it has its key, reboots it: the console cannot tell its chip, so the
// new launch waits for an officer as a migration.
func (fl *demoFleet) vlekScenario() {
	g := fl.vlek
	res, err := fl.client.Obtain(fl.ctx, g.sim, agent.Request{VMID: g.id, VolumeID: g.vol, Generation: int(g.gen.Load()), MaxWait: time.Hour, PollEvery: 2 * time.Second,
		Waiting: func(rel *wire.Release) { fl.maybeApprove(g, rel) }})
	if err != nil {
		if fl.ctx.Err() == nil {
			fl.log.Info("demo guest refused", "guest", g.id, "reason", err.Error())
		}
		return
	}
	res.Wipe()
	fl.log.Info("demo: the VLEK guest reboots; the console cannot tell its chip", "simulated", true)
	g.autoApprove.Store(false)
	fl.reboot(g)
}

func (fl *demoFleet) reboot(g *demoGuest) {
	g.epoch.Add(1)
	g.sim.NewLaunch()
	fl.boot(g, 0)
}

// boot runs the guest agent's release in the background, then heartbeats.
func (fl *demoFleet) boot(g *demoGuest, gen int) {
	if !g.running.CompareAndSwap(false, true) {
		// A previous boot still waits for an officer; it will pick the new
		// launch up on its next attempt.
		return
	}
	go func() {
		if gen == 0 {
			gen = int(g.gen.Load())
		}
		res, err := fl.client.Obtain(fl.ctx, g.sim, agent.Request{VMID: g.id, VolumeID: g.vol, Generation: gen, MaxWait: time.Hour, PollEvery: 2 * time.Second,
			Waiting: func(rel *wire.Release) { fl.maybeApprove(g, rel) }})
		g.running.Store(false)
		if err != nil {
			if fl.ctx.Err() == nil {
				fl.log.Info("demo guest refused", "guest", g.id, "reason", err.Error())
			}
			return
		}
		res.Wipe()
		fl.heartbeat(g, g.epoch.Add(1))
	}()
}

var demoApproved sync.Map

func (fl *demoFleet) maybeApprove(g *demoGuest, rel *wire.Release) {
	if !g.autoApprove.Load() {
		return
	}
	if _, done := demoApproved.LoadOrStore(rel.RequestID, true); done {
		return
	}
	time.Sleep(1500 * time.Millisecond) // an officer takes a moment
	_, err := fl.eng.Approve(fl.ctx, rel.RequestID, release.Approver{Name: demoOfficer, AuthenticatedAt: time.Now()}, "approved by the demo script")
	if err != nil && fl.ctx.Err() == nil {
		fl.log.Info("demo approval", "guest", g.id, "err", err.Error())
	}
}

func (fl *demoFleet) heartbeat(g *demoGuest, epoch int64) {
	for g.epoch.Load() == epoch && fl.ctx.Err() == nil {
		hb, err := fl.client.Heartbeat(fl.ctx, g.sim, agent.Request{VMID: g.id, VolumeID: g.vol, Generation: int(g.gen.Load())})
		next := 15 * time.Second
		if err == nil && hb.NextIn > 0 {
			next = time.Duration(hb.NextIn) * time.Second
		}
		select {
		case <-fl.ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// rotate asks for a rotation, lets the demo officer approve it, and
// confirms it as the agent does after re-keying the disk.
func (fl *demoFleet) rotate(g *demoGuest) {
	go func() {
		g.sim.NewLaunch()
		res, err := fl.client.Obtain(fl.ctx, g.sim, agent.Request{VMID: g.id, VolumeID: g.vol, Generation: int(g.gen.Load()), Purpose: wire.PurposeRotate,
			PollEvery: 2 * time.Second, Waiting: func(rel *wire.Release) { fl.maybeApprove(g, rel) }})
		if err != nil {
			fl.log.Info("demo rotation", "guest", g.id, "err", err.Error())
			return
		}
		defer res.Wipe()
		if res.NewGeneration != 0 {
			if err := fl.client.ConfirmRotation(fl.ctx, g.id, g.vol, res); err == nil {
				g.gen.Store(int64(res.NewGeneration))
			}
		}
	}()
}

// replay sends one request twice, as an attacker who captured it would.
func (fl *demoFleet) replay(g *demoGuest) {
	ch, err := fl.eng.Challenge()
	if err != nil {
		return
	}
	_, pub, _ := wire.NewKeyPair()
	req := &wire.ReleaseRequest{Version: wire.Version, VMID: g.id, VolumeID: g.vol, Purpose: wire.PurposeBoot, Generation: int(g.gen.Load()), Nonce: ch.Nonce, HPKEPublicKey: pub}
	rd, _ := wire.Transcript(req.Binding(nil))
	ev, err := g.sim.Evidence(fl.ctx, rd)
	if err != nil {
		return
	}
	req.Evidence = ev
	fl.eng.Release(fl.ctx, req)
	_, err = fl.eng.Release(fl.ctx, req)
	fl.log.Info("demo replay refused", "guest", g.id, "reason", fmt.Sprint(err))
}
