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
// on the Go side.
type Bridge struct {
	h   *Handler
	ctx context.Context
}

// NewBridge serves the window's calls with h's methods; ctx bounds them.
func NewBridge(ctx context.Context, h *Handler) *Bridge { return &Bridge{h: h, ctx: ctx} }

// Call runs "service/method" with args (a JSON array) for the session
// token names ("" for none) and returns the JSON result. Errors are
// *Error ("code: message" in the window).
func (b *Bridge) Call(token, service, method string, args json.RawMessage) (json.RawMessage, error) {
	if b == nil || b.h == nil {
		return nil, &Error{Code: CodeUnavailable, Message: "the console is not ready"}
	}
	cr := credential{token: token, source: "desktop", device: "desktop", ctx: b.ctx}
	res, e := b.h.dispatch(cr, service+"/"+method, &callOut{}, func() ([]byte, *Error) { return args, nil })
	if e != nil {
		return nil, e
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, toError(b.h.opts.Log, service+"."+method, errors.New("encode the result: "+err.Error()))
	}
	return out, nil
}
