package main

import (
	"context"
	"fmt"

	"github.com/wailsapp/wails/v2"
	"github.com/wailsapp/wails/v2/pkg/options"
	"github.com/wailsapp/wails/v2/pkg/options/assetserver"
	"github.com/wailsapp/wails/v2/pkg/options/linux"

	"keyholder/app"
	"keyholder/internal/cli"
)

// generateBindings runs Wails the way its CLI expects when it generates the
// frontend bindings: the bridge bound, no store opened, no display needed.
func generateBindings() error {
	svcs := app.New(context.Background(), app.Config{Version: version, Mode: "desktop"}, nil, &app.DesktopEvents{})
	h, err := app.NewHandler(svcs, app.HandlerOptions{AnyHost: true})
	if err != nil {
		return err
	}
	return wails.Run(&options.App{Title: "Keyholder", Bind: []any{app.NewBridge(context.Background(), h)}})
}

// openWindow shows the console prepared by `keyholder` (internal/cli) in the
// desktop window and returns when the window closes.
func openWindow(w cli.Window) error {
	// The window's calls go through the bridge (the only bound object) to
	// the console the officer chose: this computer's, which resolves each
	// call's officer from the window's own session token, or a shared one,
	// which gets that token with the call over pinned TLS. Events come
	// through Wails' runtime. In local mode the same HTTP API answers
	// fetches inside the window, with the token in a header.
	err := wails.Run(&options.App{
		Title:            "Keyholder",
		Width:            1360,
		Height:           860,
		MinWidth:         960,
		MinHeight:        600,
		AssetServer:      &assetserver.Options{Assets: w.Assets, Handler: w.Console},
		BackgroundColour: &options.RGBA{R: 26, G: 27, B: 30, A: 255},
		OnStartup:        func(c context.Context) { w.Events.Attach(c) },
		OnShutdown:       func(context.Context) { w.Cancel() },
		Bind:             []any{app.NewDesktopBridge(w.Ctx, w.Console)},
		Linux:            &linux.Options{ProgramName: "keyholder", WebviewGpuPolicy: linux.WebviewGpuPolicyNever},
	})
	if err != nil {
		return fmt.Errorf("desktop window: %w (this binary may have been built without the desktop; 'keyholder serve' works everywhere)", err)
	}
	return nil
}
