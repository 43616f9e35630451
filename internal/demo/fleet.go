// Package demo is the SIMULATED fleet of `keyholder demo`: a console set up
// with a demo officer, images and volumes, and simulated confidential VMs on
// several simulated chips that boot, heartbeat, migrate, rotate keys, meet a
// TCB update and fail in the ways a real fleet does, through the release
// API like real agents, so that every screen has live data.
package demo

import (
	"context"
	"crypto/sha512"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/images"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

// The demo officer and passphrase: the console is throwaway and SIMULATED.
const (
	Officer    = "demo"
	Passphrase = "keyholder demo passphrase"
)

// guest is one simulated VM and what the scenario does with it.
type guest struct {
	id, vol, image string
	sim            *agentsim.Guest
	gen            atomic.Int64
	autoApprove    atomic.Bool
	running        atomic.Bool  // a release is in progress
	epoch          atomic.Int64 // bumping it stops the current heartbeat loop
}

// Fleet is the demo's simulated guests and what the scenario does with
// them.
type Fleet struct {
	guests []*guest
	// claimants claim the first boot of newImageFixture's volume: the real
	// guest and a stranger. vlek is a guest whose reports a VLEK signs.
	claimants []*guest
	vlek      *guest
	// Log receives what the scenario does; Setup sets a discarding one.
	Log    *slog.Logger
	eng    *release.Service
	client *agent.Client
	ctx    context.Context
	wg     sync.WaitGroup
}

// imageFixture is one of the demo's images; key names its simulated
// measurement.
type imageFixture struct{ key, name string }

var fixtureImages = []imageFixture{{"img_demo_web", "web-frontend"}, {"img_demo_db", "postgres"}, {"img_demo_batch", "batch-worker"}}

// newImageFixture has no reference values: its first boot pins them, and two
// launches claim it.
var newImageFixture = imageFixture{"img_demo_new", "new-service"}

// measurement is the simulated launch measurement of the image with key.
func measurement(key string) []byte {
	if key == "img_demo_web" {
		return sim.DemoMeasurement
	}
	h := sha512.Sum384([]byte("keyholder demo measurement " + key))
	return h[:]
}

var chips = []struct {
	p    attest.Product
	seed string
}{{attest.Genoa, "genoa-a"}, {attest.Milan, "milan-a"}, {attest.Genoa, "genoa-b"}, {attest.Turin, "turin-a"}, {attest.Milan, "milan-b"}, {attest.Genoa, "genoa-c"}}

// createImage registers a demo image through the image registry.
func createImage(ctx context.Context, db *store.DB, im imageFixture, description string) (string, error) {
	var id string
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		created, err := images.CreateTx(ctx, tx, time.Now(), im.name, description, "officer:"+Officer)
		id = created.ID
		return err
	})
	return id, err
}

// Setup initialises the console in db through cust, its key service: the
// demo officer, three images with reference values, one volume per guest
// (n guests), a 15 s heartbeat interval, and the guest-trust scenarios.
func Setup(ctx context.Context, db *store.DB, cust *custody.Service, n int) (*Fleet, error) {
	if _, err := cust.Init(ctx, Officer, []byte(Passphrase)); err != nil {
		return nil, err
	}
	defer cust.Lock()
	refs := attest.NewReferences(db)
	imageIDs := make([]string, len(fixtureImages))
	for i, im := range fixtureImages {
		id, err := createImage(ctx, db, im, "SIMULATED demo image")
		if err != nil {
			return nil, err
		}
		imageIDs[i] = id
		if _, err := refs.Put(ctx, id, &attest.ReferenceValues{Measurements: []attest.Hex{measurement(im.key)}}, "officer:demo", "demo reference values"); err != nil {
			return nil, err
		}
	}
	if err := release.SetPolicy(ctx, cust.AuditLog(), "officer:demo", "", &release.Policy{HeartbeatInterval: release.Duration(15 * time.Second)}); err != nil {
		return nil, err
	}
	fl := &Fleet{Log: slog.New(slog.DiscardHandler)}
	for i := 0; i < n; i++ {
		img := 0
		switch i % 9 {
		case 4:
			img = 1
		case 7:
			img = 2
		}
		g := &guest{id: fmt.Sprintf("vm-demo-%02d", i+1), image: imageIDs[img]}
		vol, gen, secret, err := cust.CreateVolume(ctx, "officer:demo", g.image, g.id+"-disk")
		clear(secret)
		if err != nil {
			return nil, err
		}
		g.vol = vol
		g.gen.Store(int64(gen))
		c := chips[i%len(chips)]
		if g.sim, err = agentsim.NewGuest(c.p, c.seed); err != nil {
			return nil, err
		}
		g.sim.SetMeasurement(measurement(fixtureImages[img].key))
		g.autoApprove.Store(i < n-3) // the last three first boots wait for you
		fl.guests = append(fl.guests, g)
	}
	if err := setupTrust(ctx, db, cust, fl, imageIDs[0]); err != nil {
		return nil, err
	}
	return fl, nil
}

// setupTrust adds the guest-trust scenarios: an image without reference
// values with one volume whose first boot the real guest and a stranger
// claim, and a guest of the web image (webImage) whose reports a VLEK signs.
func setupTrust(ctx context.Context, db *store.DB, cust *custody.Service, fl *Fleet, webImage string) error {
	newImage, err := createImage(ctx, db, newImageFixture, "SIMULATED demo image without reference values")
	if err != nil {
		return err
	}
	newGuest := func(id, image, volName string, p attest.Product, chip string, m []byte) (*guest, error) {
		g := &guest{id: id, image: image}
		var err error
		if g.sim, err = agentsim.NewGuest(p, chip); err != nil {
			return nil, err
		}
		g.sim.SetMeasurement(m)
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
	real, err := newGuest("vm-new-01", newImage, "vm-new-01-disk", attest.Genoa, "genoa-c", measurement(newImageFixture.key))
	if err != nil {
		return err
	}
	stranger, err := newGuest("vm-intruder", newImage, "", attest.Milan, "intruder-host", measurement("a stranger's build"))
	if err != nil {
		return err
	}
	stranger.vol = real.vol
	stranger.gen.Store(real.gen.Load())
	fl.claimants = []*guest{real, stranger}
	if fl.vlek, err = newGuest("vm-vlek-01", webImage, "vm-vlek-01-disk", attest.Genoa, "vlek-host", measurement(fixtureImages[0].key)); err != nil {
		return err
	}
	fl.vlek.sim.VLEK = true
	fl.vlek.autoApprove.Store(true)
	return nil
}

// Run plays the scenario once the release API listens (the console's
// started hook); it returns when ctx ends.
func (fl *Fleet) Run(ctx context.Context, eng *release.Service) {
	addr, pin := eng.Listener()
	c, err := agent.NewClient("https://"+addr, pin)
	if err != nil {
		fl.Log.Error("demo fleet", "err", err)
		return
	}
	fl.ctx, fl.eng, fl.client = ctx, eng, c
	n := len(fl.guests)
	at := func(d time.Duration, what string, fn func()) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
			fl.Log.Info("demo: "+what, "simulated", true)
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
	g := func(i int) *guest { return fl.guests[i%n] }
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
		g(5).sim.SetMeasurement(measurement("unapproved build"))
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
			if chips[i%len(chips)].seed != "genoa-b" {
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
func (fl *Fleet) vlekScenario() {
	g := fl.vlek
	res, err := fl.client.Obtain(fl.ctx, g.sim, agent.Request{VMID: g.id, VolumeID: g.vol, Generation: int(g.gen.Load()), MaxWait: time.Hour, PollEvery: 2 * time.Second,
		Waiting: func(rel *wire.Release) { fl.maybeApprove(g, rel) }})
	if err != nil {
		if fl.ctx.Err() == nil {
			fl.Log.Info("demo guest refused", "guest", g.id, "reason", err.Error())
		}
		return
	}
	res.Wipe()
	fl.Log.Info("demo: the VLEK guest reboots; the console cannot tell its chip", "simulated", true)
	g.autoApprove.Store(false)
	fl.reboot(g)
}

func (fl *Fleet) reboot(g *guest) {
	g.epoch.Add(1)
	g.sim.NewLaunch()
	fl.boot(g, 0)
}

// boot runs the guest agent's release in the background, then heartbeats.
func (fl *Fleet) boot(g *guest, gen int) {
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
				fl.Log.Info("demo guest refused", "guest", g.id, "reason", err.Error())
			}
			return
		}
		res.Wipe()
		fl.heartbeat(g, g.epoch.Add(1))
	}()
}

var approved sync.Map

func (fl *Fleet) maybeApprove(g *guest, rel *wire.Release) {
	if !g.autoApprove.Load() {
		return
	}
	if _, done := approved.LoadOrStore(rel.RequestID, true); done {
		return
	}
	time.Sleep(1500 * time.Millisecond) // an officer takes a moment
	_, err := fl.eng.Approve(fl.ctx, rel.RequestID, release.Approver{Name: Officer, AuthenticatedAt: time.Now()}, "approved by the demo script")
	if err != nil && fl.ctx.Err() == nil {
		fl.Log.Info("demo approval", "guest", g.id, "err", err.Error())
	}
}

func (fl *Fleet) heartbeat(g *guest, epoch int64) {
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
func (fl *Fleet) rotate(g *guest) {
	go func() {
		g.sim.NewLaunch()
		res, err := fl.client.Obtain(fl.ctx, g.sim, agent.Request{VMID: g.id, VolumeID: g.vol, Generation: int(g.gen.Load()), Purpose: wire.PurposeRotate,
			PollEvery: 2 * time.Second, Waiting: func(rel *wire.Release) { fl.maybeApprove(g, rel) }})
		if err != nil {
			fl.Log.Info("demo rotation", "guest", g.id, "err", err.Error())
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
func (fl *Fleet) replay(g *guest) {
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
	fl.Log.Info("demo replay refused", "guest", g.id, "reason", fmt.Sprint(err))
}
