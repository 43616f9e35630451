package bootstorm

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/release"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

// replica is one console of the storm: its engine and, in --wire
// mode, its release API listener on loopback.
type replica struct {
	eng  *release.Service
	av   release.AttestVerifier
	url  string // "" in process
	pin  string
	prep *agent.Client // asks for the challenges before the storm
}

// listen serves the replica's release API as serve does (TLS 1.3 with an
// identity kept in dir, release.NewHandler, release.NewServer) on a
// loopback port. The per-address, per-VM and challenge rate limits are
// lifted: every simulated guest comes from 127.0.0.1, where a real fleet
// comes from many addresses. The body-reading bound stays the production
// default; the waiting bound holds every slot of the storm.
func (r *replica) listen(dir string, concurrency int) (stop func(), err error) {
	id, err := release.LoadOrCreateTLS(dir, time.Now())
	if err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", id.ServerTLSConfig())
	if err != nil {
		return nil, fmt.Errorf("bench release listener: %w", err)
	}
	// A billion a second: far beyond the storm, and small enough that a
	// bucket's arithmetic stays exact.
	unlimited, burst := 1e9, 1<<30
	h := release.NewHandler(r.eng, release.ServerOptions{SourceRate: unlimited, SourceBurst: burst, VMRate: unlimited, VMBurst: burst,
		ChallengeRate: unlimited, ChallengeBurst: burst, ChallengeNetRate: unlimited, ChallengeNetBurst: burst, JunkRate: unlimited, JunkBurst: burst,
		Waiting: max(256, concurrency+16)})
	srv := release.NewServer(h, id, nil)
	go srv.Serve(ln)
	r.url, r.pin = "https://"+ln.Addr().String(), id.Pin
	if r.prep, err = agent.NewClient(r.url, r.pin); err != nil {
		srv.Close()
		return nil, err
	}
	return func() { srv.Close() }, nil
}

// challenge issues a challenge: over HTTP in --wire mode, else from the
// engine.
func (r *replica) challenge(ctx context.Context) (*wire.Challenge, error) {
	if r.url == "" {
		return r.eng.Challenge()
	}
	return r.prep.Challenge(ctx)
}

// sender returns how one storm slot sends a release request: a pinned
// HTTPS client of its own in --wire mode, else the engine's Release.
func (r *replica) sender(ctx context.Context) (func(*wire.ReleaseRequest) (*wire.Release, error), error) {
	if r.url == "" {
		return func(req *wire.ReleaseRequest) (*wire.Release, error) { return r.eng.Release(ctx, req) }, nil
	}
	c, err := agent.NewClient(r.url, r.pin)
	if err != nil {
		return nil, err
	}
	return func(req *wire.ReleaseRequest) (*wire.Release, error) { return c.Send(ctx, req) }, nil
}

// DatabaseKind names the store behind a location for the report.
func DatabaseKind(location string) string {
	if store.IsPostgresURL(location) {
		return "postgres"
	}
	return "sqlite"
}
