package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"keyholder/app/remote"
)

// EventConnectionChanged reports the desktop's connection to a shared
// console (data: remote.State); the window shows a banner while it is down.
const EventConnectionChanged = remote.EventConnectionChanged

// Desktop modes as the window sees them.
const (
	ModeChoose = "choose" // nothing chosen yet: the window asks
	ModeLocal  = remote.ModeLocal
	ModeRemote = remote.ModeRemote
)

// connectCheckTimeout bounds Connect's check that the console answers.
const connectCheckTimeout = 20 * time.Second

// ConnectionInfo says which console the desktop window talks to.
type ConnectionInfo struct {
	// Mode is "choose", "local" or "remote".
	Mode string `json:"mode"`
	// URL, Pin and CAFile name the shared console (remote mode).
	URL    string `json:"url,omitempty"`
	Pin    string `json:"pin,omitempty"`
	CAFile string `json:"ca_file,omitempty"`
	// State is the connection (remote mode).
	State *remote.State `json:"state,omitempty"`
}

// DesktopConsoleOptions configure a DesktopConsole.
type DesktopConsoleOptions struct {
	// ChoicePath is the file that remembers the choice ("" remembers nothing).
	ChoicePath string
	// UserAgent names the desktop to a shared console.
	UserAgent string
	// StartLocal opens this computer's console (store, key service, release
	// API) and returns its handler and what to run at the end.
	StartLocal func() (*Handler, func(), error)
	Log        *slog.Logger
}

// DesktopConsole decides what the desktop window talks to: this computer's
// own console (local mode: the services run in this process) or a shared
// console (`keyholder serve`) over TLS pinned in Go (remote mode: every
// window call is proxied with the window's own session token, and the
// console's event stream is followed and turned into window events and
// native notifications). The choice is remembered in a small file with no
// secret in it.
type DesktopConsole struct {
	ctx    context.Context
	events *DesktopEvents
	opts   DesktopConsoleOptions

	// switching serialises the choice's changes (UseLocal, Connect,
	// Forget), so the mode checked before a choice is remembered is the
	// mode it is applied to.
	switching sync.Mutex

	mu      sync.Mutex
	mode    string
	local   *Handler
	cleanup func()
	choice  remote.Choice
	client  *remote.Client
	watcher *remote.Watcher
	stop    context.CancelFunc
}

// NewDesktopConsole returns a console in ModeChoose; Resume, UseLocal or
// Connect decide.
func NewDesktopConsole(ctx context.Context, events *DesktopEvents, o DesktopConsoleOptions) *DesktopConsole {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if events == nil {
		events = &DesktopEvents{}
	}
	return &DesktopConsole{ctx: ctx, events: events, opts: o, mode: ModeChoose}
}

// Resume applies the remembered choice. Without one, localIfNoChoice
// starts the local console (a computer that already holds a console's
// store); otherwise the window asks. A choice file that cannot be read
// is logged and the window asks again.
func (d *DesktopConsole) Resume(localIfNoChoice bool) error {
	var c remote.Choice
	ok := false
	if d.opts.ChoicePath != "" {
		var err error
		c, ok, err = remote.LoadChoice(d.opts.ChoicePath)
		if err != nil {
			d.opts.Log.Warn("the desktop's remembered console is unreadable; asking again", "err", err)
		}
	}
	switch {
	case ok && c.Mode == ModeRemote:
		return d.useRemote(c)
	case ok && c.Mode == ModeLocal, localIfNoChoice:
		return d.startLocal()
	}
	return nil
}

// Local starts this computer's console without remembering it (keyholder
// demo, whose console is its own by definition).
func (d *DesktopConsole) Local() error { return d.startLocal() }

func (d *DesktopConsole) startLocal() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.mode {
	case ModeLocal:
		return nil
	case ModeRemote:
		return &Error{Code: CodeConflict, Message: "this window is connected to a shared console; restart the app to use this computer's console"}
	}
	if d.opts.StartLocal == nil {
		return &Error{Code: CodeUnavailable, Message: "this build cannot run a console of its own"}
	}
	h, cleanup, err := d.opts.StartLocal()
	if err != nil {
		return err
	}
	d.local, d.cleanup, d.mode = h, cleanup, ModeLocal
	return nil
}

func (d *DesktopConsole) useRemote(c remote.Choice) error {
	cl, err := remote.New(c.Options(d.opts.UserAgent))
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode != ModeChoose {
		cl.Close()
		return &Error{Code: CodeConflict, Message: "this window already uses a console; restart the app to change it"}
	}
	ctx, stop := context.WithCancel(d.ctx)
	w := remote.NewWatcher(cl, func(name string, data json.RawMessage) {
		d.events.Emit(name, data)
	}, func(s remote.State) {
		d.events.Emit(EventConnectionChanged, s)
	})
	d.mode, d.choice, d.client, d.watcher, d.stop = ModeRemote, c, cl, w, stop
	go w.Run(ctx)
	return nil
}

// UseLocal makes this computer the console and remembers it.
func (d *DesktopConsole) UseLocal() (ConnectionInfo, error) {
	d.switching.Lock()
	defer d.switching.Unlock()
	if d.currentMode() == ModeRemote {
		return d.Info(), &Error{Code: CodeConflict, Message: "this window is connected to a shared console; restart the app to use this computer's console"}
	}
	if err := d.remember(remote.Choice{Mode: ModeLocal}); err != nil {
		return d.Info(), err
	}
	if err := d.startLocal(); err != nil {
		return d.Info(), err
	}
	return d.Info(), nil
}

// Connect checks that the console at url answers over TLS with the pinned
// key (pin) or a certificate from caFile, remembers it, and makes it the
// window's console. Nothing is remembered when the check fails, or when
// the window already uses a console.
func (d *DesktopConsole) Connect(url, pin, caFile string) (ConnectionInfo, error) {
	d.switching.Lock()
	defer d.switching.Unlock()
	if d.currentMode() != ModeChoose {
		return d.Info(), &Error{Code: CodeConflict, Message: "this window already uses a console; restart the app to change it"}
	}
	c := remote.Choice{Mode: ModeRemote, URL: url, Pin: pin, CAFile: caFile}
	cl, err := remote.New(c.Options(d.opts.UserAgent))
	if err != nil {
		return d.Info(), &Error{Code: CodeInvalid, Message: err.Error()}
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(d.ctx, connectCheckTimeout)
	defer cancel()
	if _, err := cl.Call(ctx, "", "Session", "State", nil); err != nil {
		var ce *remote.CallError
		if errors.As(err, &ce) {
			return d.Info(), &Error{Code: Code(ce.Code), Message: ce.Message}
		}
		return d.Info(), &Error{Code: CodeUnavailable, Message: err.Error()}
	}
	if err := d.remember(c); err != nil {
		return d.Info(), err
	}
	if err := d.useRemote(c); err != nil {
		return d.Info(), err
	}
	return d.Info(), nil
}

// Forget disconnects from the shared console and forgets it; the window
// asks again. Only a remote window (or one still choosing) can forget: a
// local console keeps running until the app ends.
func (d *DesktopConsole) Forget() (ConnectionInfo, error) {
	d.switching.Lock()
	defer d.switching.Unlock()
	d.mu.Lock()
	if d.mode == ModeLocal {
		d.mu.Unlock()
		return d.Info(), &Error{Code: CodeConflict, Message: "this computer is the console; it cannot be forgotten while it runs"}
	}
	if d.stop != nil {
		d.stop()
	}
	if d.client != nil {
		d.client.Close()
	}
	d.mode, d.choice, d.client, d.watcher, d.stop = ModeChoose, remote.Choice{}, nil, nil, nil
	d.mu.Unlock()
	if d.opts.ChoicePath != "" {
		if err := remote.ForgetChoice(d.opts.ChoicePath); err != nil {
			return d.Info(), toError(d.opts.Log, "forget the console", err)
		}
	}
	return d.Info(), nil
}

func (d *DesktopConsole) currentMode() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mode
}

func (d *DesktopConsole) remember(c remote.Choice) error {
	if d.opts.ChoicePath == "" {
		return nil
	}
	if err := remote.SaveChoice(d.opts.ChoicePath, c); err != nil {
		return &Error{Code: CodeInternal, Message: err.Error()}
	}
	return nil
}

// Info says which console the window talks to.
func (d *DesktopConsole) Info() ConnectionInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	ci := ConnectionInfo{Mode: d.mode}
	if d.mode == ModeRemote {
		ci.URL, ci.Pin, ci.CAFile = d.choice.URL, d.choice.Pin, d.choice.CAFile
		s := d.watcher.State()
		ci.State = &s
	}
	return ci
}

// Watch follows the shared console's events for the window's session
// token ("" stops following). Local mode needs nothing.
func (d *DesktopConsole) Watch(token string) {
	d.mu.Lock()
	w := d.watcher
	d.mu.Unlock()
	if w != nil {
		w.SetToken(token)
	}
}

// call runs one window call on the chosen console.
func (d *DesktopConsole) call(token, service, method string, args json.RawMessage) (json.RawMessage, error) {
	d.mu.Lock()
	mode, h, cl := d.mode, d.local, d.client
	d.mu.Unlock()
	switch mode {
	case ModeLocal:
		return callLocal(d.ctx, h, token, service, method, args)
	case ModeRemote:
		out, err := cl.Call(d.ctx, token, service, method, args)
		if err != nil {
			var ce *remote.CallError
			if errors.As(err, &ce) {
				return nil, &Error{Code: Code(ce.Code), Message: ce.Message}
			}
			return nil, &Error{Code: CodeUnavailable, Message: err.Error()}
		}
		return out, nil
	}
	return nil, &Error{Code: CodeUnavailable, Message: "choose a console first"}
}

// ServeHTTP serves the local console's HTTP API inside the window (local
// mode); there is nothing to serve otherwise.
func (d *DesktopConsole) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	h := d.local
	d.mu.Unlock()
	if h == nil {
		writeError(w, http.StatusServiceUnavailable, &Error{Code: CodeUnavailable, Message: "this window has no console of its own"})
		return
	}
	h.ServeHTTP(w, r)
}

// Close stops the connection or the local console (its final audit
// checkpoint, the store).
func (d *DesktopConsole) Close() {
	d.mu.Lock()
	stop, cl, cleanup := d.stop, d.client, d.cleanup
	d.stop, d.cleanup = nil, nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
	if cl != nil {
		cl.Close()
	}
	if cleanup != nil {
		cleanup()
	}
}
