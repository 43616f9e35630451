package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"keyholder/app"
	"keyholder/backend/custody"
	"keyholder/backend/release/wire"
	"keyholder/backend/replica"
)

var serveCommand = &command{
	name:  "serve",
	short: "serve the console to a web browser",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder serve [--listen 127.0.0.1:PORT] [--data DIR]

Serves the console (the same screens and service methods as the desktop app)
over HTTP, with server-sent events for live updates. It listens on loopback
only; a non-loopback address needs TLS and officer login.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		listen := fs.String("listen", "127.0.0.1:8420", "address for the officer console (loopback unless TLS and login are set up)")
		tlsCert := fs.String("tls-cert", "", "TLS certificate (PEM) for a non-loopback listener")
		tlsKey := fs.String("tls-key", "", "TLS private key (PEM) for a non-loopback listener")
		devSim := fs.Bool("dev-trust-simulated-amd-root", false, "DEVELOPMENT ONLY: accept evidence signed by the simulated AMD root")
		autoUnseal := fs.Bool("auto-unseal", true, "unlock through the PKCS#11 token when auto-unseal is set up (keyholder unseal setup); false waits for an officer")
		pf := addPKCS11Flags(fs)
		freshAuth := fs.Duration("fresh-auth", 0, "how long a login counts as recent for approvals and key actions (default 5m; shorter is stricter)")
		releaseListen := fs.String("release-listen", "", "address of the release API for guests (TLS 1.3, pinned; default "+defaultReleaseListen+" when free); \"off\" to serve none")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[0])}
			}
			return serve(env, serveOptions{listen: *listen, tlsCert: *tlsCert, tlsKey: *tlsKey, devSim: *devSim, releaseListen: *releaseListen, autoUnseal: *autoUnseal, pkcs11: pf, freshAuth: *freshAuth})
		}
	},
}

type serveOptions struct {
	listen, tlsCert, tlsKey string
	devSim                  bool
	releaseListen           string
	autoUnseal              bool
	pkcs11                  *pkcs11Flags  // nil: from the environment only
	freshAuth               time.Duration // zero: app.DefaultFreshAuth
	hooks                   consoleHooks  // the demo's; zero for serve
}

// checkListen refuses an officer listener that anyone but this machine could
// reach unless TLS and officer login protect it.
func checkListen(addr string, tls, login bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return nil
	}
	switch {
	case !tls:
		return fmt.Errorf("--listen %s is not a loopback address; the officer console is served beyond this machine only with TLS (--tls-cert, --tls-key) and officer login", addr)
	case !login:
		return fmt.Errorf("--listen %s is not a loopback address; officer login must be set up (keyholder init) before the console is served beyond this machine", addr)
	}
	return nil
}

func serve(env *cliEnv, o serveOptions) error {
	useTLS := o.tlsCert != "" || o.tlsKey != ""
	if useTLS && (o.tlsCert == "" || o.tlsKey == "") {
		return &exitError{code: 2, msg: "--tls-cert and --tls-key go together"}
	}
	if err := checkListen(o.listen, useTLS, webLoginAvailable(env)); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	var consoleCert *x509.Certificate
	if useTLS {
		var err error
		if consoleCert, err = loadConsoleCert(o.tlsCert, o.tlsKey); err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
	}
	ctx, cancel := signalContext()
	defer cancel()
	log := newLogger(env.stderr)
	db, err := openStore(ctx, env, true)
	if err != nil {
		return err
	}
	defer db.Close()

	hub := app.NewHub()
	pf := o.pkcs11
	if pf == nil {
		pf = &pkcs11Flags{}
	}
	if o.hooks.unlock == nil {
		o.hooks.unlock = autoUnsealHook(log, pf, env, o.autoUnseal)
	}
	cust, rel, stopRelease, err := startConsoleCore(ctx, env, log, db, o.releaseListen, o.devSim, o.hooks)
	if err != nil {
		return err
	}
	defer stopRelease()
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	// This process is one replica of the console on its database (several
	// share a PostgreSQL one): it heartbeats, carries release events to
	// the others, and runs the periodic jobs only while it holds their
	// lease.
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	releaseAddr := ""
	if rel != nil {
		releaseAddr, _ = rel.Listener()
	}
	rep, err := replica.Register(ctx, db, fmt.Sprintf("%s://%s/", scheme, ln.Addr()), releaseAddr)
	if err != nil {
		return err
	}
	rctx, rcancel := context.WithCancel(ctx)
	repDone := make(chan struct{})
	go func() { rep.Run(rctx); close(repDone) }()
	defer func() { rcancel(); <-repDone }()
	if rel != nil {
		rep.Bridge(rctx, rel)
		rel.SetJobLease(func(ctx context.Context) bool {
			ok, err := rep.Lease(ctx, "release.expiry", 3*time.Minute)
			return ok && err == nil
		})
	}
	svcs := app.New(ctx, app.Config{Version: env.cfg.Version, DataDir: env.dataDir, Mode: "web", DevTrustSimulatedRoot: o.devSim, FreshAuth: o.freshAuth, Log: log, Custody: cust, Release: rel, Replica: rep,
		AutoUnsealToken: pf.opener(env), AutoUnsealTokenInfo: pf.describer()}, db, hub)
	svcs.ConnectRelease()
	defer svcs.Close() // final signed audit checkpoint, before the store closes
	handler, err := app.NewHandler(svcs, app.HandlerOptions{Assets: env.cfg.Assets, Hub: hub, AllowedHosts: allowedHosts(ln.Addr(), consoleCert), Log: log})
	if err != nil {
		return err
	}
	srv := app.NewServer(handler)
	fmt.Fprintf(env.stdout, "Keyholder console: %s://%s/\n", scheme, ln.Addr())
	if consoleCert != nil {
		// Desktop apps connect to this shared console with this pin.
		fmt.Fprintf(env.stdout, "Console certificate (SPKI pin, SHA-256): %s\n", wire.SPKIPin(consoleCert))
	}
	if o.devSim {
		fmt.Fprintln(env.stdout, "WARNING: --dev-trust-simulated-amd-root is on: SIMULATED evidence is accepted. Never use this in production.")
	}
	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- srv.ServeTLS(ln, o.tlsCert, o.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	}
	return nil
}

// webLoginAvailable reports whether officer login protects the web console:
// once the console is initialised (officers exist), every web call needs an
// officer session (app.Session.Login sets an HttpOnly, SameSite=Strict
// cookie).
func webLoginAvailable(env *cliEnv) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := openStore(ctx, env, false)
	if err != nil {
		return false
	}
	defer db.Close()
	ok, err := custody.Initialized(ctx, db)
	return ok && err == nil
}

// loadConsoleCert reads the officer console's TLS certificate, whose pin
// desktop apps connect with.
func loadConsoleCert(certFile, keyFile string) (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s and --tls-key %s: %v", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s: %v", certFile, err)
	}
	return leaf, nil
}

// allowedHosts are the Host headers the console answers: its listening
// address and, over TLS, the names and addresses its certificate is for
// (a browser or desktop app reaches it by one of those; a rebound DNS
// name fails the certificate check before any request).
func allowedHosts(addr net.Addr, cert *x509.Certificate) []string {
	hosts := []string{addr.String()}
	if cert == nil {
		return hosts
	}
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return hosts
	}
	names := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	for _, n := range names {
		hosts = append(hosts, net.JoinHostPort(n, port))
		// On HTTPS's own port a browser sends the name alone.
		if port == "443" {
			if strings.Contains(n, ":") {
				n = "[" + n + "]"
			}
			hosts = append(hosts, n)
		}
	}
	return hosts
}
