package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gen2brain/beeep"
	"github.com/wailsapp/wails/v2/pkg/runtime"
)

// This is the only file that imports the Wails runtime. Every runtime call
// needs the context Wails hands to OnStartup (anything else makes Wails call
// log.Fatalf), so DesktopEvents does nothing until Attach has run.

// DesktopEvents pushes events through the Wails runtime. A new pending
// approval request also raises a native desktop notification and brings
// the window forward, so an officer working elsewhere sees it.
type DesktopEvents struct {
	ctx atomic.Pointer[context.Context]

	mu       sync.Mutex
	notified map[string]bool
	// Notify shows a native notification; nil means beeep.Notify.
	Notify func(title, body string) error
}

// Attach gives DesktopEvents the context from Wails' OnStartup.
func (d *DesktopEvents) Attach(ctx context.Context) { d.ctx.Store(&ctx) }

// Emit implements Events.
func (d *DesktopEvents) Emit(name string, data any) {
	if p := d.ctx.Load(); p != nil {
		runtime.EventsEmit(*p, name, data)
	}
	if name == EventApprovalsChanged {
		d.noticePending(data)
	}
}

// noticePending notifies once per new pending request. It reads the
// request through its JSON form so this file needs no backend types.
func (d *DesktopEvents) noticePending(data any) {
	b, err := json.Marshal(data)
	if err != nil {
		return
	}
	var r struct {
		ID        string `json:"id"`
		VMID      string `json:"vm_id"`
		Class     string `json:"class"`
		Status    string `json:"status"`
		Simulated bool   `json:"simulated"`
	}
	if json.Unmarshal(b, &r) != nil || r.Status != "pending" || r.ID == "" {
		return
	}
	d.mu.Lock()
	if d.notified == nil {
		d.notified = map[string]bool{}
	}
	seen := d.notified[r.ID]
	d.notified[r.ID] = true
	d.mu.Unlock()
	if seen {
		return
	}
	title := "Keyholder: approval needed"
	body := fmt.Sprintf("%s asks for its disk key (%s).", r.VMID, strings.ReplaceAll(r.Class, "_", " "))
	if r.Simulated {
		body += " SIMULATED evidence."
	}
	notify := d.Notify
	if notify == nil {
		notify = func(t, m string) error { return beeep.Notify(t, m, "") }
	}
	go notify(title, body) // a missing notification service must not stall events
	d.BringToFront()
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
