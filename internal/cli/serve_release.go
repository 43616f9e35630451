package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

// consoleHooks let `keyholder demo` prepare the console that serve (or the
// desktop) runs: unlock the key service before anything is served, and
// start the simulated fleet once the release API listens.
type consoleHooks struct {
	unlock  func(ctx context.Context, cust *custody.Service) error
	started func(ctx context.Context, eng *release.Service)
}

// startConsoleCore makes the key service and the release API that a
// console serves: the engine is nil when no release listener runs.
func startConsoleCore(ctx context.Context, env *cliEnv, log *slog.Logger, db *store.DB, releaseListen string, devSim bool, h consoleHooks) (*custody.Service, *release.Service, func(), error) {
	cust := custody.New(db, env.cfg.Custody)
	if h.unlock != nil {
		if err := h.unlock(ctx, cust); err != nil {
			return nil, nil, nil, err
		}
	}
	eng, stop, err := startRelease(ctx, env, log, db, cust, releaseListen, devSim)
	if err != nil {
		return nil, nil, nil, err
	}
	if eng != nil && h.started != nil {
		go h.started(ctx, eng)
	}
	return cust, eng, stop, nil
}

// guessReleaseURL is the default release URL for image tokens: this host's
// name and the listening port. Officers set the real one where guests reach
// the console by another name.
func guessReleaseURL(a net.Addr) string {
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return ""
	}
	host, _ := os.Hostname()
	if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsLoopback() || host == "" {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// defaultReleaseListen is where guests reach the release API unless
// --release-listen says otherwise. It is its own port, never the officer
// console's.
const defaultReleaseListen = ":8443"

// releaseEngine makes the release engine over the real verifier (AMD's
// roots; the simulated root only with the development flag) and the key
// service.
func releaseEngine(ctx context.Context, log *slog.Logger, db *store.DB, cust *custody.Service, devSim bool) (*release.Service, error) {
	o := attest.Options{Certs: attest.NewCertCache(db)}
	if devSim {
		o.TrustSimulatedRoot = true
		o.SimulatedRoots = sim.Root().TrustedRoots()
	}
	v, err := attest.NewVerifier(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("attestation verifier: %w", err)
	}
	return release.New(release.Config{DB: db, Secrets: cust, Log: log,
		Verifier: release.AttestVerifier{Verifier: v, References: attest.NewReferences(db)}})
}

// startRelease serves the release API on addr (TLS 1.3 with the console's
// own certificate, kept in the data directory) and prints its address and
// SPKI pin. "" means defaultReleaseListen if that port is free (a warning
// otherwise); "off" serves nothing. Without a listener the engine is nil.
func startRelease(ctx context.Context, env *cliEnv, log *slog.Logger, db *store.DB, cust *custody.Service, addr string, devSim bool) (*release.Service, func(), error) {
	if addr == "off" {
		return nil, func() {}, nil
	}
	soft := addr == ""
	if soft {
		addr = defaultReleaseListen
	}
	eng, err := releaseEngine(ctx, log, db, cust, devSim)
	if err != nil {
		return nil, nil, err
	}
	id, err := release.LoadOrCreateTLS(env.dataDir, time.Now())
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && soft {
		fmt.Fprintf(env.stdout, "Release API not started: %v; pass --release-listen ADDR to serve guests.\n", err)
		return nil, func() {}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("release API: listen on %s: %w", addr, err)
	}
	handler := release.NewHandler(eng, release.ServerOptions{Log: log})
	srv := release.NewServer(handler, id, log)
	go func() {
		if err := srv.Serve(tls.NewListener(ln, id.ServerTLSConfig())); err != nil && ctx.Err() == nil {
			log.Error("release API stopped", "err", err)
		}
	}()
	rctx, cancel := context.WithCancel(ctx)
	go eng.RunExpiry(rctx, 30*time.Second)
	go handler.RunJunkAudit(rctx, time.Minute)
	eng.SetListener(ln.Addr().String(), id.Pin)
	if err := release.Publish(ctx, db, guessReleaseURL(ln.Addr()), id.Pin); err != nil {
		log.Warn("publish the release API's pin for image preparation", "err", err)
	}
	fmt.Fprintf(env.stdout, "Release API for guests: https://%s/  (SPKI pin, SHA-256: %s)\n", ln.Addr(), id.Pin)
	if !cust.Unlocked() {
		fmt.Fprintln(env.stdout, "The key service is locked: guests are answered \"unavailable\" until an officer logs in.")
	}
	return eng, func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	}, nil
}
