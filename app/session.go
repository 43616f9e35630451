package app

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"time"

	"keyholder/backend/custody"
)

// Session events.
const (
	EventSessionChanged = "session:changed" // data: SessionState
	EventKeysChanged    = "keys:changed"    // data: nil (reload volumes and officers)
)

// Session timing defaults.
const (
	// DefaultIdleLock locks an officer's UI session after this much inactivity.
	DefaultIdleLock = 10 * time.Minute
	// DefaultFreshAuth is how long a login or re-entry of the passphrase
	// counts as recent enough to approve a release or change custody.
	DefaultFreshAuth = 5 * time.Minute
)

const sessionCookie = "keyholder_session"

// Session serves officer login and the officer's UI session, which is
// separate from the key service: the key service unlocks once per process
// (the first login unlocks it) and keeps serving releases, while the UI
// session locks after IdleLock without activity and needs the passphrase
// again. Approving and custody changes need a recent authentication
// (FreshAuth).
//
// The console has one officer session at a time (one person at the
// console). In the web console it is bound to an HttpOnly, SameSite=Strict
// cookie set at login; a login elsewhere ends it.
type Session struct {
	*base
	mu  sync.Mutex
	cur *uiSession
}

type uiSession struct {
	officer  custody.Officer
	token    string
	authAt   time.Time
	lastSeen time.Time
	locked   bool
}

// SessionState is what the UI needs to decide which screen to show.
type SessionState struct {
	// Initialized is false until the console has a master key and an
	// officer (show the first-run setup, Session.Setup).
	Initialized bool `json:"initialized"`
	// KeyServiceUnlocked says whether releases can be served.
	KeyServiceUnlocked bool `json:"key_service_unlocked"`
	// LoggedIn is true while an officer session exists (it may be locked).
	LoggedIn bool   `json:"logged_in"`
	Locked   bool   `json:"locked"`
	Officer  string `json:"officer"`
	Role     string `json:"role"`
	// FreshUntil is when the last authentication stops counting as recent
	// (approvals need it); zero when not logged in.
	FreshUntil      time.Time `json:"fresh_until"`
	IdleLockSeconds int       `json:"idle_lock_seconds"`
	// LoginRequired is true when calls need a session (web console with
	// officers); the desktop still shows the lock screen.
	LoginRequired bool `json:"login_required"`
}

func newSession(b *base) *Session {
	s := &Session{base: b}
	go s.watchIdle()
	return s
}

// watchIdle tells the UI when the session idle-locks, so it shows the lock
// screen without waiting for the next call.
func (s *Session) watchIdle() {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			was := s.cur != nil && !s.cur.locked
			s.expireLocked(s.now())
			var st SessionState
			locked := was && s.cur.locked
			if locked {
				st = s.stateLocked()
			}
			s.mu.Unlock()
			if locked {
				s.events.Emit(EventSessionChanged, st)
			}
		}
	}
}

func (s *Session) idle() time.Duration {
	if s.cfg.IdleLock > 0 {
		return s.cfg.IdleLock
	}
	return DefaultIdleLock
}

func (s *Session) fresh() time.Duration {
	if s.cfg.FreshAuth > 0 {
		return s.cfg.FreshAuth
	}
	return DefaultFreshAuth
}

// expireLocked locks the session when it has been idle too long. s.mu held.
func (s *Session) expireLocked(now time.Time) {
	if s.cur != nil && !s.cur.locked && now.Sub(s.cur.lastSeen) >= s.idle() {
		s.cur.locked = true
	}
}

func (s *Session) stateLocked() SessionState {
	st := SessionState{KeyServiceUnlocked: s.custody.Unlocked(), IdleLockSeconds: int(s.idle() / time.Second)}
	ok, err := custody.Initialized(s.ctx, s.db)
	st.Initialized = ok && err == nil
	st.LoginRequired = st.Initialized && s.cfg.Mode == "web"
	if c := s.cur; c != nil {
		st.LoggedIn, st.Locked = true, c.locked
		st.Officer, st.Role = c.officer.Name, string(c.officer.Role)
		st.FreshUntil = c.authAt.Add(s.fresh())
	}
	return st
}

// State reports the console's and the officer session's state.
func (s *Session) State() (SessionState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.now())
	return s.stateLocked(), nil
}

// Touch records officer activity (the UI calls it on input, throttled), so
// the session does not idle-lock while someone works.
func (s *Session) Touch() (SessionState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	if s.cur != nil && !s.cur.locked {
		s.cur.lastSeen = now
	}
	return s.stateLocked(), nil
}

// Setup initialises a new console from the UI: the first officer (an admin)
// and the master key. It fails once the console is initialised.
func (s *Session) Setup(name, passphrase string) (SessionState, error) {
	pass := []byte(passphrase)
	defer clear(pass)
	o, err := s.custody.Init(s.ctx, name, pass)
	if err != nil {
		return SessionState{}, toError(s.log, "initialise the console", err)
	}
	return s.start(o), nil
}

// Login authenticates an officer and starts their session (ending any
// other). The first login after a start also unlocks the key service.
func (s *Session) Login(name, passphrase string) (SessionState, error) {
	pass := []byte(passphrase)
	defer clear(pass)
	o, err := s.custody.Authenticate(s.ctx, name, pass)
	if err != nil {
		return SessionState{}, toError(s.log, "log in", err)
	}
	return s.start(o), nil
}

func (s *Session) start(o custody.Officer) SessionState {
	var tok [32]byte
	rand.Read(tok[:])
	now := s.now()
	s.mu.Lock()
	s.cur = &uiSession{officer: o, token: hex.EncodeToString(tok[:]), authAt: now, lastSeen: now}
	st := s.stateLocked()
	s.mu.Unlock()
	s.events.Emit(EventSessionChanged, st)
	return st
}

// Lock locks the session now (the officer steps away); Unlock reopens it.
func (s *Session) Lock() (SessionState, error) {
	s.mu.Lock()
	if s.cur != nil {
		s.cur.locked = true
	}
	st := s.stateLocked()
	s.mu.Unlock()
	s.events.Emit(EventSessionChanged, st)
	return st, nil
}

// Unlock reopens a locked session with the same officer's passphrase. It
// also renews the recent authentication that approvals need, so the UI
// calls it to re-authenticate an unlocked session too.
func (s *Session) Unlock(passphrase string) (SessionState, error) {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur == nil {
		return SessionState{}, &Error{Code: CodeUnauthorized, Message: "no officer is logged in"}
	}
	pass := []byte(passphrase)
	defer clear(pass)
	o, err := s.custody.Authenticate(s.ctx, cur.officer.Name, pass)
	if err != nil {
		return SessionState{}, toError(s.log, "unlock the session", err)
	}
	now := s.now()
	s.mu.Lock()
	if s.cur == cur {
		cur.officer, cur.authAt, cur.lastSeen, cur.locked = o, now, now, false
	}
	st := s.stateLocked()
	s.mu.Unlock()
	s.events.Emit(EventSessionChanged, st)
	return st, nil
}

// Logout ends the session.
func (s *Session) Logout() error {
	s.mu.Lock()
	s.cur = nil
	st := s.stateLocked()
	s.mu.Unlock()
	s.events.Emit(EventSessionChanged, st)
	return nil
}

// current returns the unlocked session's officer, recording activity.
func (s *Session) current() (custody.Officer, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	switch {
	case s.cur == nil:
		return custody.Officer{}, time.Time{}, &Error{Code: CodeUnauthorized, Message: "log in as an officer first"}
	case s.cur.locked:
		return custody.Officer{}, time.Time{}, &Error{Code: CodeUnauthorized, Message: "the session is locked; enter your passphrase"}
	}
	s.cur.lastSeen = now
	return s.cur.officer, s.cur.authAt, nil
}

// requireOfficer returns the officer of the open (unlocked) session, or an
// unauthorized error. Services call it before showing custody data.
func (s *Session) requireOfficer() (custody.Officer, error) {
	if ok, err := custody.Initialized(s.ctx, s.db); err == nil && !ok {
		return custody.Officer{}, nil // first run: nothing to protect yet
	}
	o, _, err := s.current()
	return o, err
}

// requireFresh returns the session's officer if their role is one of roles
// (none: any role) and they authenticated within FreshAuth, else an *Error
// (CodeUnauthorized, CodeForbidden or CodeReauth). The Approvals service
// calls it with custody.RoleApprover, custody.RoleAdmin before recording a
// decision, and records the returned officer's name as the approver.
func (s *Session) requireFresh(roles ...custody.Role) (custody.Officer, error) {
	o, authAt, err := s.current()
	if err != nil {
		return o, err
	}
	allowed := len(roles) == 0
	for _, r := range roles {
		allowed = allowed || o.Role == r
	}
	if !allowed {
		return o, &Error{Code: CodeForbidden, Message: "your role (" + string(o.Role) + ") does not allow this"}
	}
	if s.now().Sub(authAt) >= s.fresh() {
		return o, &Error{Code: CodeReauth, Message: "this needs a recent authentication; enter your passphrase again"}
	}
	return o, nil
}

// CodeReauth asks the UI to re-enter the passphrase (Session.Unlock) and retry.
const CodeReauth Code = "reauth_required"

func (s *Session) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// publicMethods may be called without a session in the web console. The
// rest, Console.Info too (it names the host and the data directory), need
// one.
var publicMethods = map[string]bool{
	"Session/State": true, "Session/Login": true, "Session/Setup": true, "Session/Logout": true,
}

// gate decides whether an HTTP request may call method ("Service/Method",
// or "" for the event stream). It is active in the web console once
// officers exist; the desktop window has no cookie and relies on the
// session checks of the services themselves.
func (s *Session) gate(r *http.Request, method string) *Error {
	if s.cfg.Mode != "web" || publicMethods[method] {
		return nil
	}
	if ok, err := custody.Initialized(s.ctx, s.db); err != nil || !ok {
		return nil // first run: Setup is the only thing to do
	}
	c, err := r.Cookie(sessionCookie)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	if err != nil || s.cur == nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.cur.token)) != 1 {
		return &Error{Code: CodeUnauthorized, Message: "log in as an officer first"}
	}
	if s.cur.locked && method != "Session/Unlock" && method != "Session/Touch" && method != "Session/Lock" {
		return &Error{Code: CodeUnauthorized, Message: "the session is locked; enter your passphrase"}
	}
	return nil
}

// afterCall sets or clears the session cookie after a login or logout.
func (s *Session) afterCall(w http.ResponseWriter, r *http.Request, method string) {
	if s.cfg.Mode != "web" {
		return
	}
	switch method {
	case "Session/Login", "Session/Setup":
		s.mu.Lock()
		tok := ""
		if s.cur != nil {
			tok = s.cur.token
		}
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: tok, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	case "Session/Logout":
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	}
}

// custodyError maps custody's errors to UI codes.
func custodyError(err error) *Error {
	var te *custody.ThrottledError
	switch {
	case errors.As(err, &te):
		return &Error{Code: CodeUnauthorized, Message: te.Error()}
	case errors.Is(err, custody.ErrWrongPassphrase):
		return &Error{Code: CodeUnauthorized, Message: "wrong officer name or passphrase"}
	case errors.Is(err, custody.ErrLocked):
		return &Error{Code: CodeUnavailable, Message: "the key service is locked; an officer must log in"}
	case errors.Is(err, custody.ErrNotInitialized):
		return &Error{Code: CodeConflict, Message: "the console is not initialised yet"}
	case errors.Is(err, custody.ErrForbidden):
		return &Error{Code: CodeForbidden, Message: err.Error()}
	case errors.Is(err, custody.ErrInvalid), errors.Is(err, custody.ErrWeakPassphrase), errors.Is(err, custody.ErrConfirmation):
		return &Error{Code: CodeInvalid, Message: err.Error()}
	case errors.Is(err, custody.ErrInitialized), errors.Is(err, custody.ErrOfficerExists), errors.Is(err, custody.ErrLastAdmin),
		errors.Is(err, custody.ErrRotationPending), errors.Is(err, custody.ErrNotPending), errors.Is(err, custody.ErrNotRevoked),
		errors.Is(err, custody.ErrRevoked), errors.Is(err, custody.ErrDestroyed):
		return &Error{Code: CodeConflict, Message: err.Error()}
	}
	return nil
}
