package agent_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// startReplica starts a second console process on first's data directory:
// its own database handle, key service (unlocked by the same officer),
// engine and release API listener, with the same TLS identity.
func startReplica(t *testing.T, first *console) *console {
	t.Helper()
	return startReplicaWrapped(t, first, nil)
}

// startReplicaWrapped is startReplica with the release API handler wrapped
// (nil: not wrapped), to make a replica misbehave.
func startReplicaWrapped(t *testing.T, first *console, wrap func(c *console, h http.Handler) http.Handler) *console {
	t.Helper()
	ctx := context.Background()
	c := &console{t: t, dir: first.dir}
	var err error
	c.db, err = store.Open(ctx, storetest.Location(t, first.dir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.cust = custody.New(c.db, custody.Options{KDF: testKDF})
	if _, err := c.cust.Unlock(ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	v, err := attest.NewVerifier(ctx, attest.Options{TrustSimulatedRoot: true, SimulatedRoots: sim.Root().TrustedRoots()})
	if err != nil {
		t.Fatal(err)
	}
	c.svc, err = release.New(release.Config{DB: c.db, Verifier: release.AttestVerifier{Verifier: v, References: attest.NewReferences(c.db)}, Secrets: c.cust})
	if err != nil {
		t.Fatal(err)
	}
	if c.id, err = release.LoadOrCreateTLS(first.dir, time.Now()); err != nil || c.id.Pin != first.id.Pin {
		t.Fatalf("replica's TLS identity: %v", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.id.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = release.NewHandler(c.svc, release.ServerOptions{})
	if wrap != nil {
		h = wrap(c, h)
	}
	c.srv = release.NewServer(h, c.id, nil)
	go c.srv.Serve(ln)
	c.url = "https://" + ln.Addr().String()
	if c.client, err = agent.NewClient(c.url, c.id.Pin); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReplicasShareChallenges: two console processes on one database
// behind a load balancer that sends every challenge to the first and every
// other request to the second. The agent boots through it (the second
// accepts the first's challenges); a nonce used at one is refused by both.
func TestReplicasShareChallenges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := startConsole(t, dir, true)
	defer a.stop()
	b := startReplica(t, a)
	defer b.stop()

	// The load balancer: TLS with the consoles' identity (the pin holds),
	// routing by path.
	pinned, _ := wire.PinnedTLSConfig(a.id.Pin)
	proxyTo := func(target string) *httputil.ReverseProxy {
		u, _ := url.Parse(target)
		p := httputil.NewSingleHostReverseProxy(u)
		p.Transport = &http.Transport{TLSClientConfig: pinned}
		return p
	}
	toA, toB := proxyTo(a.url), proxyTo(b.url)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", a.id.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	lb := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/challenge" {
			toA.ServeHTTP(w, r)
			return
		}
		toB.ServeHTTP(w, r)
	})}
	go lb.Serve(ln)
	defer lb.Close()
	client, err := agent.NewClient("https://"+ln.Addr().String(), a.id.Pin)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := a.db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_web', 'web', ?)`, store.Time(time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(a.db).Put(ctx, "img_web", &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "officer:alice", "e2e"); err != nil {
		t.Fatal(err)
	}
	vol, _, secret, err := a.cust.CreateVolume(ctx, "officer:alice", "img_web", "web-data")
	if err != nil {
		t.Fatal(err)
	}
	g, err := agentsim.NewGuest(attest.Genoa, "chip-a")
	if err != nil {
		t.Fatal(err)
	}
	req := agent.Request{VMID: "vm-web-1", VolumeID: vol, PollEvery: 10 * time.Millisecond, Waiting: b.approveAll(t)}
	res, err := client.Obtain(ctx, g, req)
	if err != nil || res.Class != "first_boot" || string(res.Secret) != string(secret) {
		t.Fatalf("first boot through the replicas: %+v %v", res, err)
	}
	g.NewLaunch()
	res, err = client.Obtain(ctx, g, noApproveFor(t, req))
	if err != nil || res.Class != "routine_boot" {
		t.Fatalf("routine boot through the replicas: %+v %v", res, err)
	}

	// A nonce used at B is refused by A and by B.
	var ch wire.Challenge
	if err := postJSON(a, "/v1/challenge", nil, &ch); err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	_, pub, _ := wire.NewKeyPair()
	r := &wire.ReleaseRequest{Version: wire.Version, VMID: "vm-web-1", VolumeID: vol, Purpose: wire.PurposeBoot, Nonce: ch.Nonce, HPKEPublicKey: pub}
	rd, _ := wire.Transcript(r.Binding(nil))
	ev, err := g.Evidence(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	r.Evidence = ev
	var rel wire.Release
	if err := postJSON(b, "/v1/release", r, &rel); err != nil || rel.Status != wire.StatusReleased {
		t.Fatalf("release at B with A's challenge: %+v %v", rel, err)
	}
	for _, con := range []*console{a, b} {
		var we *wire.Error
		if err := postJSON(con, "/v1/release", r, &rel); !errors.As(err, &we) || we.Code != wire.CodeNonceUnknown {
			t.Errorf("replay at %s: %v", con.url, err)
		}
	}
}
