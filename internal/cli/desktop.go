package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"keyholder/app"
)

// Window is a console ready for the desktop window: Config.Desktop shows it.
type Window struct {
	// Ctx lives as long as the console; Cancel ends it (on the window's
	// shutdown).
	Ctx    context.Context
	Cancel context.CancelFunc
	// Assets is the built frontend; API answers the window's calls.
	Assets fs.FS
	API    *app.Handler
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
			return runDesktop(env, *devSim, *releaseListen, consoleHooks{})
		}
	},
}

func hasDisplay() bool {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" {
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}

func runDesktop(env *cliEnv, devSim bool, releaseListen string, hooks consoleHooks) error {
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
	db, err := openStore(ctx, env, true)
	if err != nil {
		return err
	}
	defer db.Close()

	if hooks.unlock == nil {
		// Like serve: a console with auto-unseal set up unlocks through its
		// PKCS#11 token (KEYHOLDER_PKCS11_MODULE, _TOKEN, _PIN_FILE or _PIN).
		hooks.unlock = autoUnsealHook(log, &pkcs11Flags{}, env, true)
	}
	cust, rel, stopRelease, err := startConsoleCore(ctx, env, log, db, releaseListen, devSim, hooks)
	if err != nil {
		return err
	}
	defer stopRelease()
	events := &app.DesktopEvents{}
	svcs := app.New(ctx, app.Config{Version: env.cfg.Version, DataDir: env.dataDir, Mode: "desktop", DevTrustSimulatedRoot: devSim, Log: log, Dialogs: events,
		Custody: cust, Release: rel}, db, events)
	svcs.ConnectRelease()
	defer svcs.Close() // final signed audit checkpoint, before the store closes
	api, err := app.NewHandler(svcs, app.HandlerOptions{AnyHost: true, Log: log})
	if err != nil {
		return err
	}
	return env.cfg.Desktop(Window{Ctx: ctx, Cancel: cancel, Assets: env.cfg.Assets, API: api, Events: events})
}
