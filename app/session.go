package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"sort"
	"sync"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/store"
)

// Session events.
const (
	// EventSessionChanged says that some session changed (a login, a lock,
	// an ended session); it carries no data: every window asks
	// Session.State for its own session.
	EventSessionChanged = "session:changed"
	EventKeysChanged    = "keys:changed" // data: nil (reload volumes and officers)
)

// Session timing defaults.
const (
	// DefaultIdleLock locks an officer's UI session after this much inactivity.
	DefaultIdleLock = 10 * time.Minute
	// DefaultFreshAuth is how long a login or re-entry of the passphrase
	// counts as recent enough to approve a release or change custody.
	DefaultFreshAuth = 5 * time.Minute
)

// Session limits.
const (
	// maxSessionsPerOfficer bounds one officer's live sessions; a new login
	// beyond it ends that officer's least recently used session.
	maxSessionsPerOfficer = 8
	// maxSessions bounds all live sessions; a login beyond it is refused.
	maxSessions = 256
)

const sessionCookie = "keyholder_session"

// sessionHeader carries the desktop window's session token (kept in the
// window's memory) to the HTTP API; the web console uses the cookie.
const sessionHeader = "X-Keyholder-Session"

// Session serves officer login and the officers' UI sessions, which are
// separate from the key service: the key service unlocks once per process
// (the first login unlocks it) and keeps serving releases, while each UI
// session locks after IdleLock without activity and needs its officer's
// passphrase again. Approving and custody changes need a recent
// authentication (FreshAuth) of the session that asks.
//
// Any number of sessions live at once: several officers, one officer on
// several devices. Each is named by a random token that only its holder
// knows (a web browser's HttpOnly, SameSite=Strict cookie; the desktop
// window's memory); the console keeps only the token's SHA-256. Every call
// resolves its own session into a Caller before it runs (see Caller); there
// is no "current officer" of the process.
type Session struct {
	*base
	mu     sync.Mutex
	byHash map[[sha256.Size]byte]*uiSession
	byID   map[string]*uiSession
	logins *loginLimiter
	// initCheck says whether the console is initialised (tests inject
	// failures; custody.Initialized otherwise).
	initCheck func(context.Context) (bool, error)
}

type uiSession struct {
	id        string // public name (listing, ending); not a credential
	tokenHash [sha256.Size]byte
	officer   custody.Officer
	since     time.Time
	authAt    time.Time
	lastSeen  time.Time
	locked    bool
	device    string
	userAgent string
	source    string
}

// Caller is the officer a call acts for, resolved from the call's own
// credential (the web session cookie, or the desktop window's session
// token) before the call is dispatched and again after its arguments were
// read. A service method that needs to know who calls declares a Caller as
// its FIRST parameter; Handler (HTTP and the desktop bridge) fills it in
// and never decodes it from the call's arguments (a Caller cannot be
// unmarshalled from JSON at all). Services pass it on to
// Session.requireOfficer and Session.requireFresh, which check it against
// the live session again at the moment of use.
//
// Officer is zero when the call carries no session or a locked one.
type Caller struct {
	// Officer is the session's officer (zero without an open session).
	Officer custody.Officer
	// SessionID names the session (also set for a locked session); "" for
	// a call without one.
	SessionID string
	// AuthenticatedAt is when the session's officer last entered their
	// passphrase (login or unlock).
	AuthenticatedAt time.Time
	// Source is the caller's network address (host only) or "desktop".
	Source string
	// UserAgent is the browser's User-Agent ("" for the desktop window).
	UserAgent string
	// Device is "web" or "desktop".
	Device string

	ctx context.Context
	out *callOut
}

// callOut is what a call hands back to the transport beside its result:
// the token of a session it started, or that it ended the caller's session.
type callOut struct {
	token string
	ended bool
}

// UnmarshalJSON refuses: a caller comes from the call's credential, never
// from its arguments.
func (*Caller) UnmarshalJSON([]byte) error {
	return errors.New("a caller cannot be given as an argument")
}

// Context is the call's context: the HTTP request's (cancelled when the
// client goes away), or the console's for the desktop and for tests.
func (c Caller) Context() context.Context {
	if c.ctx != nil {
		return c.ctx
	}
	return context.Background()
}

// SessionState is what the UI needs to decide which screen to show, for the
// session of the window that asks.
type SessionState struct {
	// Initialized is false until the console has a master key and an
	// officer (show the first-run setup, Session.Setup).
	Initialized bool `json:"initialized"`
	// KeyServiceUnlocked says whether releases can be served.
	KeyServiceUnlocked bool `json:"key_service_unlocked"`
	// KeyServiceLockedReason says why the key service is still locked after
	// it tried to unlock itself (auto-unseal through a PKCS#11 token).
	KeyServiceLockedReason string `json:"key_service_locked_reason,omitempty"`
	// LoggedIn is true while this window's session exists (it may be locked).
	LoggedIn bool   `json:"logged_in"`
	Locked   bool   `json:"locked"`
	Officer  string `json:"officer"`
	Role     string `json:"role"`
	// SessionID names this window's session (Settings marks it).
	SessionID string `json:"session_id"`
	// FreshUntil is when the last authentication stops counting as recent
	// (approvals need it); zero when not logged in.
	FreshUntil      time.Time `json:"fresh_until"`
	IdleLockSeconds int       `json:"idle_lock_seconds"`
	// LoginRequired is true when calls need a session (web console with
	// officers); the desktop still shows the lock screen.
	LoginRequired bool `json:"login_required"`
	// Token is the new session's credential, returned by Login and Setup
	// to the desktop window only (it keeps it in memory and sends it with
	// each call). The web console sets an HttpOnly cookie instead.
	Token string `json:"token,omitempty"`
}

// SessionInfo describes one live session (Settings lists them).
type SessionInfo struct {
	ID        string    `json:"id"`
	Officer   string    `json:"officer"`
	Role      string    `json:"role"`
	Device    string    `json:"device"`
	UserAgent string    `json:"user_agent"`
	Address   string    `json:"address"`
	Since     time.Time `json:"since"`
	LastSeen  time.Time `json:"last_seen"`
	Locked    bool      `json:"locked"`
	// Current marks the session of the officer who asked.
	Current bool `json:"current"`
}

func newSession(b *base) *Session {
	s := &Session{base: b, byHash: map[[sha256.Size]byte]*uiSession{}, byID: map[string]*uiSession{}, logins: newLoginLimiter()}
	go s.watchIdle()
	return s
}

// watchIdle tells the UIs when a session idle-locks, so they show the lock
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
			locked := 0
			now := s.now()
			for _, u := range s.byID {
				if !u.locked && s.expireLocked(u, now) {
					locked++
				}
			}
			s.mu.Unlock()
			if locked > 0 {
				s.events.Emit(EventSessionChanged, nil)
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

// expireLocked locks u when it has been idle too long and says whether it
// is locked. s.mu held.
func (s *Session) expireLocked(u *uiSession, now time.Time) bool {
	if !u.locked && now.Sub(u.lastSeen) >= s.idle() {
		u.locked = true
	}
	return u.locked
}

func hashToken(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// lookupLocked finds the session a token names (nil: none). The map is
// keyed by the token's SHA-256, and the stored hash is compared again in
// constant time. s.mu held.
func (s *Session) lookupLocked(token string) *uiSession {
	if token == "" {
		return nil
	}
	h := hashToken(token)
	u := s.byHash[h]
	if u == nil || subtle.ConstantTimeCompare(u.tokenHash[:], h[:]) != 1 {
		return nil
	}
	s.expireLocked(u, s.now())
	return u
}

func (s *Session) removeLocked(u *uiSession) {
	delete(s.byHash, u.tokenHash)
	delete(s.byID, u.id)
}

func (s *Session) initialized(ctx context.Context) (bool, error) {
	if s.initCheck != nil {
		return s.initCheck(ctx)
	}
	return custody.Initialized(ctx, s.db)
}

func (s *Session) stateFor(ctx context.Context, sessionID string) (SessionState, error) {
	ok, err := s.initialized(ctx)
	if err != nil {
		return SessionState{}, toError(s.log, "read the console's state", err)
	}
	st := SessionState{Initialized: ok, KeyServiceUnlocked: s.custody.Unlocked(), KeyServiceLockedReason: s.custody.LockedReason(), IdleLockSeconds: int(s.idle() / time.Second)}
	st.LoginRequired = st.Initialized && s.cfg.Mode == "web"
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.byID[sessionID]; u != nil {
		s.expireLocked(u, s.now())
		st.LoggedIn, st.Locked = true, u.locked
		st.Officer, st.Role, st.SessionID = u.officer.Name, string(u.officer.Role), u.id
		st.FreshUntil = u.authAt.Add(s.fresh())
	}
	return st, nil
}

// State reports the console's state and the calling window's session.
func (s *Session) State(c Caller) (SessionState, error) {
	return s.stateFor(c.Context(), c.SessionID)
}

// Touch records officer activity (the UI calls it on input, throttled), so
// the caller's session does not idle-lock while someone works.
func (s *Session) Touch(c Caller) (SessionState, error) {
	s.mu.Lock()
	if u := s.byID[c.SessionID]; u != nil && !s.expireLocked(u, s.now()) {
		u.lastSeen = s.now()
	}
	s.mu.Unlock()
	return s.State(c)
}

// Setup initialises a new console from the UI: the first officer (an admin)
// and the master key; the caller is logged in as that officer. It fails
// once the console is initialised.
func (s *Session) Setup(c Caller, name, passphrase string) (SessionState, error) {
	pass := []byte(passphrase)
	defer clear(pass)
	o, err := s.custody.Init(c.Context(), name, pass)
	if err != nil {
		return SessionState{}, toError(s.log, "initialise the console", err)
	}
	return s.start(c, o)
}

// Login authenticates an officer and starts a new session for the calling
// window (ending the window's previous one, if any; other sessions stay).
// Attempts are throttled per officer (custody) and per source address
// (before the passphrase check runs), and the check stops when the caller
// goes away. The first login after a start also unlocks the key service.
func (s *Session) Login(c Caller, name, passphrase string) (SessionState, error) {
	pass := []byte(passphrase)
	defer clear(pass)
	o, err := s.authenticate(c, name, pass)
	if err != nil {
		return SessionState{}, toError(s.log, "log in", err)
	}
	return s.start(c, o)
}

// authenticate checks name's passphrase under the caller's context, after
// reserving an attempt for the caller's source address.
func (s *Session) authenticate(c Caller, name string, pass []byte) (custody.Officer, error) {
	done, err := s.logins.reserve(c.Source, s.now())
	if err != nil {
		return custody.Officer{}, err
	}
	o, err := s.custody.Authenticate(c.Context(), name, pass)
	done(err == nil, s.now())
	return o, err
}

func (s *Session) start(c Caller, o custody.Officer) (SessionState, error) {
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return SessionState{}, toError(s.log, "start a session", err)
	}
	token := hex.EncodeToString(tok[:])
	now := s.now()
	u := &uiSession{id: store.NewID("ses"), tokenHash: hashToken(token), officer: o, since: now, authAt: now, lastSeen: now,
		device: c.Device, userAgent: c.UserAgent, source: c.Source}
	if u.device == "" {
		u.device = s.cfg.Mode
	}
	s.mu.Lock()
	if old := s.byID[c.SessionID]; old != nil {
		s.removeLocked(old)
	}
	var mine []*uiSession
	for _, x := range s.byID {
		if x.officer.Name == o.Name {
			mine = append(mine, x)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].lastSeen.Before(mine[j].lastSeen) })
	for len(mine) >= maxSessionsPerOfficer {
		s.removeLocked(mine[0])
		mine = mine[1:]
	}
	if len(s.byID) >= maxSessions {
		s.mu.Unlock()
		return SessionState{}, &Error{Code: CodeUnavailable, Message: "too many officer sessions are open; end some in Settings"}
	}
	s.byHash[u.tokenHash], s.byID[u.id] = u, u
	s.mu.Unlock()
	if c.out != nil {
		c.out.token = token
	}
	s.events.Emit(EventSessionChanged, nil)
	st, err := s.stateFor(c.Context(), u.id)
	if err == nil && u.device == "desktop" {
		st.Token = token
	}
	return st, err
}

// Lock locks the caller's session now (the officer steps away); Unlock
// reopens it.
func (s *Session) Lock(c Caller) (SessionState, error) {
	s.mu.Lock()
	if u := s.byID[c.SessionID]; u != nil {
		u.locked = true
	}
	s.mu.Unlock()
	s.events.Emit(EventSessionChanged, nil)
	return s.State(c)
}

// Unlock reopens the caller's locked session with its officer's
// passphrase. It also renews the recent authentication that approvals
// need, so the UI calls it to re-authenticate an unlocked session too.
func (s *Session) Unlock(c Caller, passphrase string) (SessionState, error) {
	s.mu.Lock()
	u := s.byID[c.SessionID]
	var name string
	if u != nil {
		name = u.officer.Name
	}
	s.mu.Unlock()
	if u == nil {
		return SessionState{}, &Error{Code: CodeUnauthorized, Message: "no officer is logged in"}
	}
	pass := []byte(passphrase)
	defer clear(pass)
	o, err := s.authenticate(c, name, pass)
	if err != nil {
		return SessionState{}, toError(s.log, "unlock the session", err)
	}
	now := s.now()
	s.mu.Lock()
	if s.byID[u.id] == u { // not ended meanwhile
		u.officer, u.authAt, u.lastSeen, u.locked = o, now, now, false
	}
	s.mu.Unlock()
	s.events.Emit(EventSessionChanged, nil)
	return s.State(c)
}

// Logout ends the caller's session.
func (s *Session) Logout(c Caller) error {
	s.mu.Lock()
	if u := s.byID[c.SessionID]; u != nil {
		s.removeLocked(u)
	}
	s.mu.Unlock()
	if c.out != nil {
		c.out.ended = true
	}
	s.events.Emit(EventSessionChanged, nil)
	return nil
}

// List returns the live sessions, oldest first. Admins only.
func (s *Session) List(c Caller) ([]SessionInfo, error) {
	if _, err := s.requireRole(c, custody.RoleAdmin); err != nil {
		return nil, err
	}
	s.mu.Lock()
	now := s.now()
	out := make([]SessionInfo, 0, len(s.byID))
	for _, u := range s.byID {
		s.expireLocked(u, now)
		out = append(out, SessionInfo{ID: u.id, Officer: u.officer.Name, Role: string(u.officer.Role), Device: u.device, UserAgent: u.userAgent,
			Address: u.source, Since: u.since, LastSeen: u.lastSeen, Locked: u.locked, Current: u.id == c.SessionID})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// End ends a session by its ID (SessionInfo.ID). Admins only, recently
// authenticated; audited.
func (s *Session) End(c Caller, id string) error {
	o, err := s.requireFresh(c, custody.RoleAdmin)
	if err != nil {
		return err
	}
	s.mu.Lock()
	u := s.byID[id]
	if u != nil {
		s.removeLocked(u)
	}
	s.mu.Unlock()
	if u == nil {
		return &Error{Code: CodeNotFound, Message: "no such session"}
	}
	s.auditSession(c.Context(), o.Name, "session.end", u.officer.Name, "ended by an admin")
	s.events.Emit(EventSessionChanged, nil)
	s.events.Emit(EventAuditAppended, nil)
	return nil
}

// alive says whether a session still exists and is not locked.
func (s *Session) alive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byID[id]
	return u != nil && !s.expireLocked(u, s.now())
}

// endOfficer ends every session of an officer (their role changed or they
// were removed) and says how many ended.
func (s *Session) endOfficer(name string) int {
	return s.endWhere(func(o custody.Officer) bool { return o.Name == name })
}

// endOfficerID ends every session of the officer with that ID (removed,
// replaced under their name, or whose role changed).
func (s *Session) endOfficerID(id string) {
	s.endWhere(func(o custody.Officer) bool { return o.ID == id })
}

// endWhere ends every session whose officer matches and says how many
// ended.
func (s *Session) endWhere(match func(custody.Officer) bool) int {
	s.mu.Lock()
	n := 0
	for _, u := range s.byID {
		if match(u.officer) {
			s.removeLocked(u)
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.events.Emit(EventSessionChanged, nil)
	}
	return n
}

// errNoSession and errLocked are the refusals of calls without an open session.
var (
	errNoSession = &Error{Code: CodeUnauthorized, Message: "log in as an officer first"}
	errLocked    = &Error{Code: CodeUnauthorized, Message: "the session is locked; enter your passphrase"}
)

// requireOfficer returns the officer of the caller's open (unlocked)
// session, recording activity, or an unauthorized error. It checks the
// session again at the moment of use and the officer against the store
// (an officer removed or whose role changed, also by another process, has
// their sessions ended). Services call it before showing custody data.
// Before the console is initialised there is nothing to protect and it
// returns a zero officer; an error while finding that out refuses.
func (s *Session) requireOfficer(c Caller) (custody.Officer, error) {
	ctx := c.Context()
	if c.SessionID == "" {
		ok, err := s.initialized(ctx)
		if err != nil {
			return custody.Officer{}, &Error{Code: CodeUnavailable, Message: "cannot check who may do this; refused"}
		}
		if !ok {
			return custody.Officer{}, nil // first run: nothing to protect yet
		}
		return custody.Officer{}, errNoSession
	}
	o, _, err := s.current(ctx, c.SessionID)
	return o, err
}

// current returns the open session's officer and authentication time,
// recording activity.
func (s *Session) current(ctx context.Context, id string) (custody.Officer, time.Time, error) {
	s.mu.Lock()
	u := s.byID[id]
	switch {
	case u == nil:
		s.mu.Unlock()
		return custody.Officer{}, time.Time{}, errNoSession
	case s.expireLocked(u, s.now()):
		s.mu.Unlock()
		return custody.Officer{}, time.Time{}, errLocked
	}
	u.lastSeen = s.now()
	o, authAt := u.officer, u.authAt
	s.mu.Unlock()
	// The officer as the store knows them now: the same officer (ID; the
	// name may have passed to someone else) with the same role.
	cur, err := s.custody.Officer(ctx, o.Name)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && (cur.ID != o.ID || cur.Role != o.Role)):
		s.endOfficerID(o.ID)
		return custody.Officer{}, time.Time{}, &Error{Code: CodeUnauthorized, Message: "your officer account changed; log in again"}
	case err != nil:
		return custody.Officer{}, time.Time{}, &Error{Code: CodeUnavailable, Message: "cannot check who may do this; refused"}
	}
	return cur, authAt, nil
}

// requireRole returns the caller's officer if their role is one of roles
// (none: any role), else an *Error (CodeUnauthorized or CodeForbidden).
func (s *Session) requireRole(c Caller, roles ...custody.Role) (custody.Officer, error) {
	if c.SessionID == "" {
		return custody.Officer{}, errNoSession
	}
	o, _, err := s.current(c.Context(), c.SessionID)
	if err != nil {
		return o, err
	}
	return o, checkRole(o, roles)
}

func checkRole(o custody.Officer, roles []custody.Role) error {
	allowed := len(roles) == 0
	for _, r := range roles {
		allowed = allowed || o.Role == r
	}
	if !allowed {
		return &Error{Code: CodeForbidden, Message: "your role (" + string(o.Role) + ") does not allow this"}
	}
	return nil
}

// requireFresh returns the caller's officer and their session's
// authentication time if their role is one of roles (none: any role) and
// they authenticated within FreshAuth, else an *Error (CodeUnauthorized,
// CodeForbidden or CodeReauth). The Approvals service calls it with
// custody.RoleApprover, custody.RoleAdmin before recording a decision,
// and records the returned officer's name as the approver.
func (s *Session) requireFresh(c Caller, roles ...custody.Role) (custody.Officer, error) {
	o, _, err := s.requireFreshAt(c, roles...)
	return o, err
}

func (s *Session) requireFreshAt(c Caller, roles ...custody.Role) (custody.Officer, time.Time, error) {
	if c.SessionID == "" {
		return custody.Officer{}, time.Time{}, errNoSession
	}
	o, authAt, err := s.current(c.Context(), c.SessionID)
	if err != nil {
		return o, authAt, err
	}
	if err := checkRole(o, roles); err != nil {
		return o, authAt, err
	}
	if s.now().Sub(authAt) >= s.fresh() {
		return o, authAt, &Error{Code: CodeReauth, Message: "this needs a recent authentication; enter your passphrase again"}
	}
	return o, authAt, nil
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

// lockedMethods may be called with a locked session.
var lockedMethods = map[string]bool{"Session/Unlock": true, "Session/Touch": true, "Session/Lock": true}

// credential is what a call presents: its session token and where it
// comes from.
type credential struct {
	token     string
	source    string
	userAgent string
	device    string
	ctx       context.Context
}

// authorize resolves a call's credential into its Caller and decides
// whether it may call method ("Service/Method", or "" for the event
// stream). In the web console every call but the public ones needs an open
// session once officers exist; the desktop window's calls without one
// reach only what the services allow without an officer. Any error while
// deciding refuses.
func (s *Session) authorize(cr credential, method string) (Caller, *Error) {
	c := Caller{Source: cr.source, UserAgent: cr.userAgent, Device: cr.device, ctx: cr.ctx}
	s.mu.Lock()
	if u := s.lookupLocked(cr.token); u != nil {
		c.SessionID = u.id
		if !u.locked {
			c.Officer, c.AuthenticatedAt = u.officer, u.authAt
		}
	}
	locked := c.SessionID != "" && c.Officer.Name == ""
	s.mu.Unlock()
	if publicMethods[method] || s.cfg.Mode != "web" {
		return c, nil
	}
	ok, err := s.initialized(c.Context())
	switch {
	case err != nil:
		s.log.Warn("session gate: cannot read whether the console is initialised", "err", err)
		return Caller{}, &Error{Code: CodeUnavailable, Message: "cannot check who may do this; refused"}
	case !ok:
		return c, nil // first run: Setup is the only thing to do
	case c.SessionID == "":
		return Caller{}, errNoSession
	case locked && !lockedMethods[method]:
		return Caller{}, errLocked
	}
	return c, nil
}

// setCookie sets or clears the session cookie after a call that started or
// ended the caller's session.
func setCookie(w http.ResponseWriter, r *http.Request, out *callOut) {
	switch {
	case out.token != "":
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: out.token, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	case out.ended:
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	}
}
