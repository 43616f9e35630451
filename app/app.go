// Package app holds the services the frontend calls: thin adapters from UI
// calls to the backend packages, one per screen area. Wails binds them in the
// desktop app; Handler serves the very same methods as JSON over HTTP for the
// web console (and for the desktop window's own fetches).
//
// A service method takes JSON-friendly arguments and returns a value and an
// error; errors reach the frontend as *Error (a code and a safe message).
package app

import (
	"context"
	"log/slog"
	"reflect"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
	"keyholder/backend/release"
	"keyholder/backend/replica"
	"keyholder/backend/store"
)

// Config describes the running console.
type Config struct {
	Version string
	DataDir string
	Mode    string // "desktop" or "web"
	// DevTrustSimulatedRoot is the development flag: evidence signed by the
	// simulated AMD root is accepted, and everything it touches is SIMULATED.
	DevTrustSimulatedRoot bool
	Log                   *slog.Logger
	// Custody is the key service; nil makes one over the store with
	// CustodyOptions. A command that unlocks it at start (serve
	// --passphrase-file) passes its own.
	Custody        *custody.Service
	CustodyOptions custody.Options
	// IdleLock and FreshAuth time the officer session (zero: the defaults,
	// DefaultIdleLock and DefaultFreshAuth); Now is the clock (nil: time.Now).
	IdleLock, FreshAuth time.Duration
	Now                 func() time.Time
	// Release is the release engine (with its verifier) when this process
	// serves the release API; nil gives an officer-side engine for the
	// Approvals screen only. Services.ConnectRelease routes its events.
	Release *release.Service
	// Replica is this process's registration among the console replicas
	// on its database (Settings shows them); nil in the desktop app.
	Replica *replica.Replica
	// Dialogs opens native file dialogs (desktop only; nil in the web console).
	Dialogs Dialogs
	// AutoUnsealTokenInfo describes the PKCS#11 token this process was
	// started with (serve --pkcs11-module, --token-label, --key-label)
	// without opening it, for Keys.SetupAutoUnseal to ask for; nil: none.
	AutoUnsealTokenInfo func() (custody.UnsealInfo, error)
	// AutoUnsealToken opens that token, creating its AES key when it has
	// none, for Keys.CollectAutoUnseal once a setup is approved; nil: none.
	// info describes the opened token as AutoUnsealTokenInfo does. The
	// caller calls done to close the token.
	AutoUnsealToken func() (w custody.KeyWrapper, info custody.UnsealInfo, done func(), err error)
}

// Dialogs are the native file dialogs of the desktop app.
type Dialogs interface {
	OpenFile(title string) (string, error)
	SaveFile(title, defaultName string) (string, error)
}

// Services is every bound service. Each exported field is one service; its
// type name is the name the frontend calls it by.
type Services struct {
	Console   *Console
	Fleet     *Fleet
	Approvals *Approvals
	Images    *Images
	Keys      *Keys
	Audit     *Audit
	Session   *Session
}

// New makes the services over an open store. ctx bounds every call; cancel
// it at shutdown.
func New(ctx context.Context, cfg Config, db *store.DB, ev Events) *Services {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Custody == nil {
		cfg.Custody = custody.New(db, cfg.CustodyOptions)
	}
	b := &base{ctx: ctx, cfg: cfg, db: db, events: ev, log: cfg.Log, custody: cfg.Custody}
	b.session = newSession(b)
	b.quorum = newQuorum(b)
	// Without a store (Wails generating the bindings from the method set)
	// there is nothing to watch.
	if db != nil {
		go b.expireAdminActions()
		// Catch-up only: while the key service is unlocked, appends through
		// custody's AuditLog sign a checkpoint with every Nth entry in that
		// entry's own transaction. The ticker signs what was appended without
		// the key (by another process on the same data directory) instead of
		// waiting for this console's next append.
		go b.checkpoints()
		go b.watchAudit(500 * time.Millisecond)
	}
	return &Services{
		Console:   &Console{b},
		Fleet:     newFleet(b),
		Approvals: &Approvals{base: b},
		Images:    newImages(b),
		Keys:      &Keys{b},
		Audit:     &Audit{b},
		Session:   b.session,
	}
}

// List returns the services in a stable order, for Wails' Bind option.
func (s *Services) List() []any {
	v := reflect.ValueOf(s).Elem()
	out := make([]any, 0, v.NumField())
	for i := 0; i < v.NumField(); i++ {
		out = append(out, v.Field(i).Interface())
	}
	return out
}

// base is what every service shares.
type base struct {
	ctx    context.Context
	cfg    Config
	db     *store.DB
	events Events
	log    *slog.Logger
	// custody is the key service; session the officer's UI session;
	// quorum the two-person rule for custody actions.
	custody *custody.Service
	session *Session
	quorum  *quorum.Service
}
