package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"keyholder/app"
	"keyholder/app/remote"
)

// Window is a console ready for the desktop window: Config.Desktop shows it.
type Window struct {
	// Ctx lives as long as the console; Cancel ends it (on the window's
	// shutdown).
	Ctx    context.Context
	Cancel context.CancelFunc
	// Assets is the built frontend; Console answers the window's calls
	// (this computer's console, or a shared one).
	Assets  fs.FS
	Console *app.DesktopConsole
	// Events is attached to the window's runtime at its start.
	Events *app.DesktopEvents
}

var desktopCommand = &command{
	name:  "",
	short: "open the desktop console",
	usage: func(w io.Writer) {
		fmt.Fprint(w, "Usage: keyholder [--data DIR]\n\nOpens the desktop console. Without a display, use 'keyholder serve'.\n")
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		devSim := fs.Bool("dev-trust-simulated-amd-root", false, "DEVELOPMENT ONLY: accept evidence signed by the simulated AMD root")
		releaseListen := fs.String("release-listen", "", "address of the release API for guests (default "+defaultReleaseListen+" when free); \"off\" to serve none")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unknown command %q; run 'keyholder help'", args[0])}
			}
			return openDesktop(env, desktopStart{devSim: *devSim, releaseListen: *releaseListen})
		}
	},
}

func hasDisplay() bool {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" {
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}

// runDesktop opens the window on this computer's own console, whatever
// the desktop remembers (keyholder demo: its console is its own).
func runDesktop(env *cliEnv, devSim bool, releaseListen string, hooks consoleHooks) error {
	return openDesktop(env, desktopStart{devSim: devSim, releaseListen: releaseListen, hooks: hooks, local: true})
}

// desktopStart is how the desktop window starts.
type desktopStart struct {
	devSim        bool
	releaseListen string
	hooks         consoleHooks
	// local: this computer is the console, without asking or remembering.
	local bool
}

// openDesktop opens the window. Its console is this computer's (local
// mode: the store and services run in this process) or a shared one that
// the officer connects to (remote mode, app.DesktopConsole); the first
// start asks, unless the data directory already holds a console.
func openDesktop(env *cliEnv, o desktopStart) error {
	if env.cfg.GenerateBindings != nil {
		return env.cfg.GenerateBindings()
	}
	if !hasDisplay() {
		return &exitError{code: 1, msg: "no display found (DISPLAY and WAYLAND_DISPLAY are unset); run 'keyholder serve' to use the console in a browser"}
	}
	if env.cfg.Desktop == nil {
		return &exitError{code: 1, msg: "this binary has no desktop window; run 'keyholder serve' to use the console in a browser"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := newLogger(env.stderr)
	events := &app.DesktopEvents{}
	choice := ""
	if !o.local {
		p, err := remote.ChoicePath()
		if err != nil {
			log.Warn("the desktop cannot remember its console", "err", err)
		}
		choice = p
	}
	desk := app.NewDesktopConsole(ctx, events, app.DesktopConsoleOptions{
		ChoicePath: choice,
		UserAgent:  "Keyholder desktop " + env.cfg.Version,
		Log:        log,
		StartLocal: func() (*app.Handler, func(), error) { return startLocalConsole(ctx, env, log, events, o) },
	})
	defer desk.Close() // the local console's final audit checkpoint, before its store closes
	var err error
	if o.local {
		err = desk.Local()
	} else {
		err = desk.Resume(storeExists(env))
	}
	if err != nil {
		return err
	}
	return env.cfg.Desktop(Window{Ctx: ctx, Cancel: cancel, Assets: env.cfg.Assets, Console: desk, Events: events})
}

// storeExists says whether the data directory holds a console's store:
// that computer was its own console before the desktop asked.
func storeExists(env *cliEnv) bool {
	_, err := os.Stat(filepath.Join(env.dataDir, "keyholder.db"))
	return err == nil
}

// startLocalConsole opens this computer's console for the window: the
// store, the key service and the release API, and the services' HTTP API.
func startLocalConsole(ctx context.Context, env *cliEnv, log *slog.Logger, events *app.DesktopEvents, o desktopStart) (h *app.Handler, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	db, err := openStore(ctx, env, true)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() { db.Close() })
	hooks := o.hooks
	if hooks.unlock == nil {
		// Like serve: a console with auto-unseal set up unlocks through its
		// PKCS#11 token (KEYHOLDER_PKCS11_MODULE, _TOKEN, _PIN_FILE or _PIN).
		hooks.unlock = autoUnsealHook(log, &pkcs11Flags{}, env, true)
	}
	cust, rel, stopRelease, err := startConsoleCore(ctx, env, log, db, o.releaseListen, o.devSim, hooks)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, stopRelease)
	svcs := app.New(ctx, app.Config{Version: env.cfg.Version, DataDir: env.dataDir, Mode: "desktop", DevTrustSimulatedRoot: o.devSim, Log: log, Dialogs: events,
		Custody: cust, Release: rel}, db, events)
	svcs.ConnectRelease()
	undo = append(undo, func() { svcs.Close() }) // final signed audit checkpoint, before the store closes
	h, err = app.NewHandler(svcs, app.HandlerOptions{AnyHost: true, Log: log})
	if err != nil {
		return nil, nil, err
	}
	return h, cleanup, nil
}
