package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"github.com/wailsapp/wails/v2"
	"github.com/wailsapp/wails/v2/pkg/options"
	"github.com/wailsapp/wails/v2/pkg/options/assetserver"
	"github.com/wailsapp/wails/v2/pkg/options/linux"

	"keyholder/app"
)

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
	if generatingBindings {
		svcs := app.New(context.Background(), app.Config{Version: version, Mode: "desktop"}, nil, &app.DesktopEvents{})
		h, err := app.NewHandler(svcs, app.HandlerOptions{AnyHost: true})
		if err != nil {
			return err
		}
		return wails.Run(&options.App{Title: "Keyholder", Bind: []any{app.NewBridge(context.Background(), h)}})
	}
	if !hasDisplay() {
		return &exitError{code: 1, msg: "no display found (DISPLAY and WAYLAND_DISPLAY are unset); run 'keyholder serve' to use the console in a browser"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := newLogger(env.stderr)
	db, err := openStore(ctx, env, true)
	if err != nil {
		return err
	}
	defer db.Close()

	cust, rel, stopRelease, err := startConsoleCore(ctx, env, log, db, releaseListen, devSim, hooks)
	if err != nil {
		return err
	}
	defer stopRelease()
	events := &app.DesktopEvents{}
	svcs := app.New(ctx, app.Config{Version: version, DataDir: env.dataDir, Mode: "desktop", DevTrustSimulatedRoot: devSim, Log: log, Dialogs: events,
		Custody: cust, Release: rel}, db, events)
	svcs.ConnectRelease()
	defer svcs.Close() // final signed audit checkpoint, before the store closes
	assets, err := fs.Sub(frontendDist, "frontend/dist")
	if err != nil {
		return err
	}
	// The window's calls go through the bridge (the only bound object),
	// which resolves each call's officer from the window's own session
	// token; events come through Wails' runtime. The same HTTP API answers
	// fetches inside the window, with the token in a header.
	api, err := app.NewHandler(svcs, app.HandlerOptions{AnyHost: true, Log: log})
	if err != nil {
		return err
	}
	err = wails.Run(&options.App{
		Title:            "Keyholder",
		Width:            1360,
		Height:           860,
		MinWidth:         960,
		MinHeight:        600,
		AssetServer:      &assetserver.Options{Assets: assets, Handler: api},
		BackgroundColour: &options.RGBA{R: 26, G: 27, B: 30, A: 255},
		OnStartup:        func(c context.Context) { events.Attach(c) },
		OnShutdown:       func(context.Context) { cancel() },
		Bind:             []any{app.NewBridge(ctx, api)},
		Linux:            &linux.Options{ProgramName: "keyholder", WebviewGpuPolicy: linux.WebviewGpuPolicyNever},
	})
	if err != nil {
		return fmt.Errorf("desktop window: %w (this binary may have been built without the desktop; 'keyholder serve' works everywhere)", err)
	}
	return nil
}
