package app

import (
	"context"
	"encoding/json"
	"errors"
)

// Bridge is the one object the desktop app binds to its window (Wails'
// Bind): the window's calls go through the same dispatch as the HTTP API,
// with the window's own session token (kept in the window's memory, given
// by Session.Login or Session.Setup). The services themselves are never
// bound, so the window cannot name a Caller: it is resolved from the token
// on the Go side. With a DesktopConsole the calls go to the console the
// officer chose: this computer's, or a shared one over pinned TLS.
type Bridge struct {
	h   *Handler
	d   *DesktopConsole
	ctx context.Context
}

// NewBridge serves the window's calls with h's methods; ctx bounds them.
func NewBridge(ctx context.Context, h *Handler) *Bridge { return &Bridge{h: h, ctx: ctx} }

// NewDesktopBridge serves the window's calls on the console d chose.
func NewDesktopBridge(ctx context.Context, d *DesktopConsole) *Bridge {
	return &Bridge{d: d, ctx: ctx}
}

// Call runs "service/method" with args (a JSON array) for the session
// token names ("" for none) and returns the JSON result. Errors are
// *Error ("code: message" in the window).
func (b *Bridge) Call(token, service, method string, args json.RawMessage) (json.RawMessage, error) {
	if b == nil {
		return nil, &Error{Code: CodeUnavailable, Message: "the console is not ready"}
	}
	if b.d != nil {
		return b.d.call(token, service, method, args)
	}
	return callLocal(b.ctx, b.h, token, service, method, args)
}

func callLocal(ctx context.Context, h *Handler, token, service, method string, args json.RawMessage) (json.RawMessage, error) {
	if h == nil {
		return nil, &Error{Code: CodeUnavailable, Message: "the console is not ready"}
	}
	cr := credential{token: token, source: "desktop", device: "desktop", ctx: ctx}
	res, e := h.dispatch(cr, service+"/"+method, &callOut{}, func() ([]byte, *Error) { return args, nil })
	if e != nil {
		return nil, e
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, toError(h.opts.Log, service+"."+method, errors.New("encode the result: "+err.Error()))
	}
	return out, nil
}

// Connection says which console the window talks to ("choose" until the
// officer decided).
func (b *Bridge) Connection() (ConnectionInfo, error) {
	if b.d == nil {
		return ConnectionInfo{Mode: ModeLocal}, nil
	}
	return b.d.Info(), nil
}

// UseLocal makes this computer the console (and remembers it).
func (b *Bridge) UseLocal() (ConnectionInfo, error) {
	if b.d == nil {
		return ConnectionInfo{Mode: ModeLocal}, nil
	}
	return b.d.UseLocal()
}

// Connect makes the shared console at url the window's console, trusting
// only the key whose SPKI SHA-256 is pin, or certificates from caFile
// (exactly one of them), after checking that it answers so.
func (b *Bridge) Connect(url, pin, caFile string) (ConnectionInfo, error) {
	if b.d == nil {
		return ConnectionInfo{Mode: ModeLocal}, &Error{Code: CodeConflict, Message: "this window runs its own console"}
	}
	return b.d.Connect(url, pin, caFile)
}

// Forget disconnects from the shared console and forgets it.
func (b *Bridge) Forget() (ConnectionInfo, error) {
	if b.d == nil {
		return ConnectionInfo{Mode: ModeLocal}, &Error{Code: CodeConflict, Message: "this window runs its own console"}
	}
	return b.d.Forget()
}

// Watch follows the shared console's live events for the window's session
// token ("" to stop); the window calls it when its session opens or ends.
func (b *Bridge) Watch(token string) error {
	if b.d != nil {
		b.d.Watch(token)
	}
	return nil
}

// PickCAFile shows the native open-file dialog for a console's CA file.
func (b *Bridge) PickCAFile() (string, error) {
	if b.d == nil {
		return "", &Error{Code: CodeUnavailable, Message: "no file dialog"}
	}
	p, err := b.d.events.OpenFile("The console's CA certificate (PEM)")
	if err != nil {
		return "", &Error{Code: CodeUnavailable, Message: err.Error()}
	}
	return p, nil
}
