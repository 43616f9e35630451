package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"keyholder/backend/custody"
	"keyholder/internal/demo"
)

var demoCommand = &command{
	name:  "demo",
	short: "run the console with a SIMULATED fleet on a throwaway data directory",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder demo [--guests 25] [--web] [--listen 127.0.0.1:8420] [--tls-cert F --tls-key F] [--keep]

Starts a console on a fresh temporary data directory, trusting the simulated
AMD root (everything is labelled SIMULATED), with a fleet of simulated
confidential VMs on several simulated Milan, Genoa and Turin chips and three
images. Over the first two minutes they boot, heartbeat, migrate to a new
chip, restore an old disk generation, meet a TCB update, and a few fail
(debug policy, unknown measurement, a replayed request, a guest that stops
heartbeating), so every screen has live data and approvals are waiting.
Log in as officer "demo" with the passphrase the command prints.

--web serves the console to a browser (as 'keyholder serve'); without it the
desktop window opens where there is a display. With --tls-cert and --tls-key
it serves over TLS, as a shared console that desktop apps connect to.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		guests := fs.Int("guests", 25, "number of simulated guests")
		web := fs.Bool("web", false, "serve the console to a browser instead of opening the desktop window")
		listen := fs.String("listen", "127.0.0.1:8420", "address of the web console (--web)")
		keep := fs.Bool("keep", false, "keep the temporary data directory")
		tlsCert := fs.String("tls-cert", "", "TLS certificate (PEM) of the web console (--web)")
		tlsKey := fs.String("tls-key", "", "TLS private key (PEM) of the web console (--web)")
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
			return runDemo(env, *guests, *web, serveOptions{listen: *listen, tlsCert: *tlsCert, tlsKey: *tlsKey}, *keep)
		}
	},
}

func runDemo(env *cliEnv, guests int, web bool, so serveOptions, keep bool) error {
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
	if denv.cfg.Custody.KDF == (custody.KDFParams{}) {
		denv.cfg.Custody.KDF = custody.KDFParams{Time: 1, MemoryKiB: 16 << 10, Threads: 1}
	}
	fl, err := setupDemo(&denv, guests)
	if err != nil {
		return fmt.Errorf("demo setup: %w", err)
	}
	fl.Log = newLogger(env.stderr)
	fmt.Fprintf(env.stdout, "SIMULATED demo: %d guests. Log in as officer %q with passphrase %q.\n", guests, demo.Officer, demo.Passphrase)
	hooks := consoleHooks{
		unlock: func(ctx context.Context, cust *custody.Service) error {
			_, err := cust.Unlock(ctx, demo.Officer, []byte(demo.Passphrase))
			return err
		},
		started: fl.Run,
	}
	if !web {
		if hasDisplay() {
			return runDesktop(&denv, true, "127.0.0.1:0", hooks)
		}
		fmt.Fprintln(env.stdout, "No display: serving the demo console to a browser (as with --web).")
	}
	so.releaseListen, so.devSim, so.hooks = "127.0.0.1:0", true, hooks
	return serve(&denv, so)
}

// setupDemo initialises the demo console in env's data directory.
func setupDemo(env *cliEnv, n int) (*demo.Fleet, error) {
	ctx := context.Background()
	db, err := openStore(ctx, env, false)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return demo.Setup(ctx, db, custody.New(db, env.cfg.Custody), n)
}
