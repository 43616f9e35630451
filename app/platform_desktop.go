package app

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/wailsapp/wails/v2/pkg/runtime"
)

// This is the only file that imports the Wails runtime. Every runtime call
// needs the context Wails hands to OnStartup (anything else makes Wails call
// log.Fatalf), so DesktopEvents does nothing until Attach has run.

// DesktopEvents pushes events through the Wails runtime.
type DesktopEvents struct {
	ctx atomic.Pointer[context.Context]
}

// Attach gives DesktopEvents the context from Wails' OnStartup.
func (d *DesktopEvents) Attach(ctx context.Context) { d.ctx.Store(&ctx) }

// Emit implements Events.
func (d *DesktopEvents) Emit(name string, data any) {
	if p := d.ctx.Load(); p != nil {
		runtime.EventsEmit(*p, name, data)
	}
}

// BringToFront shows and raises the window (after a new approval request).
func (d *DesktopEvents) BringToFront() {
	if p := d.ctx.Load(); p != nil {
		runtime.WindowShow(*p)
		runtime.WindowUnminimise(*p)
	}
}

// OpenFile shows the native open-file dialog; "" means the officer cancelled.
func (d *DesktopEvents) OpenFile(title string) (string, error) {
	p := d.ctx.Load()
	if p == nil {
		return "", errors.New("the desktop window is not ready")
	}
	return runtime.OpenFileDialog(*p, runtime.OpenDialogOptions{Title: title})
}

// SaveFile shows the native save-file dialog; "" means the officer cancelled.
func (d *DesktopEvents) SaveFile(title, defaultName string) (string, error) {
	p := d.ctx.Load()
	if p == nil {
		return "", errors.New("the desktop window is not ready")
	}
	return runtime.SaveFileDialog(*p, runtime.SaveDialogOptions{Title: title, DefaultFilename: defaultName})
}
