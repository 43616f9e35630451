package app

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/internal/testclock"
)

// webConsole is a web console behind the real handler and a real HTTP
// server. gateSeen fires when a request's handler starts reading its body,
// which it does only after the session gate let the request through.
type webConsole struct {
	t        *testing.T
	s        *Services
	clk      *testclock.Clock
	srv      *httptest.Server
	gateSeen chan string
}

type signalBody struct {
	io.ReadCloser
	once sync.Once
	fire func()
}

func (b *signalBody) Read(p []byte) (int, error) {
	b.once.Do(b.fire)
	return b.ReadCloser.Read(p)
}

func newWebConsole(t *testing.T) *webConsole {
	s, c := newSessionServices(t, "web")
	h, err := NewHandler(s, HandlerOptions{Hub: NewHub()})
	if err != nil {
		t.Fatal(err)
	}
	wc := &webConsole{t: t, s: s, clk: c, gateSeen: make(chan string, 16)}
	wc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		r.Body = &signalBody{ReadCloser: r.Body, fire: func() { wc.gateSeen <- path }}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(wc.srv.Close)
	return wc
}

// call makes one call with a session cookie ("" for none) and returns the
// status, the result or error, and the cookie the answer set.
func (wc *webConsole) call(method, args, cookie string) (int, map[string]json.RawMessage, string) {
	wc.t.Helper()
	req, _ := http.NewRequest("POST", wc.srv.URL+"/api/call/"+method, strings.NewReader(args))
	req.Header.Set("X-Keyholder-Client", "1")
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		wc.t.Fatal(err)
	}
	defer res.Body.Close()
	select { // this request's own signal, sent before it was answered (none if refused earlier)
	case <-wc.gateSeen:
	default:
	}
	var out map[string]json.RawMessage
	json.NewDecoder(res.Body).Decode(&out)
	tok := ""
	for _, ck := range res.Cookies() {
		if ck.Name == sessionCookie {
			tok = ck.Value
		}
	}
	return res.StatusCode, out, tok
}

func (wc *webConsole) login(name, pass string) string {
	wc.t.Helper()
	st, out, tok := wc.call("Session/Login", fmt.Sprintf("[%q,%q]", name, pass), "")
	if st != 200 || tok == "" {
		wc.t.Fatalf("login %s: %d %s", name, st, out["error"])
	}
	return tok
}

// officerOf asks Session/State with a cookie and returns the officer named.
func (wc *webConsole) officerOf(cookie string) string {
	wc.t.Helper()
	_, out, _ := wc.call("Session/State", "[]", cookie)
	var st SessionState
	json.Unmarshal(out["result"], &st)
	return st.Officer
}

// team sets up alice (admin), bob and carol (approvers) and vic (viewer).
func (wc *webConsole) team() (admin string) {
	wc.t.Helper()
	st, out, admin := wc.call("Session/Setup", `["alice","alice's passphrase"]`, "")
	if st != 200 || admin == "" {
		wc.t.Fatalf("setup: %d %s", st, out["error"])
	}
	for _, o := range [][2]string{{"bob", "approver"}, {"carol", "approver"}, {"vic", "viewer"}} {
		if st, out, _ := wc.call("Keys/AddOfficer", fmt.Sprintf("[%q,%q,%q]", o[0], o[1], o[0]+"'s passphrase"), admin); st != 200 {
			wc.t.Fatalf("add %s: %d %s", o[0], st, out["error"])
		}
	}
	return admin
}

// delayedCall sends a call's headers with cookie, runs meanwhile once the
// server has let the headers through its gate and waits for the body, then
// sends the body, and returns the status and body of the answer.
func (wc *webConsole) delayedCall(method, args, cookie string, meanwhile func()) (int, string) {
	wc.t.Helper()
	conn, err := net.Dial("tcp", wc.srv.Listener.Addr().String())
	if err != nil {
		wc.t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/call/%s HTTP/1.1\r\nHost: %s\r\nX-Keyholder-Client: 1\r\nContent-Type: application/json\r\nCookie: %s=%s\r\nContent-Length: %d\r\n\r\n",
		method, wc.srv.Listener.Addr(), sessionCookie, cookie, len(args))
	if p := <-wc.gateSeen; p != "/api/call/"+method {
		wc.t.Fatalf("gate signal for %s, want %s", p, method)
	}
	meanwhile()
	io.WriteString(conn, args)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		wc.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// A viewer's call whose body arrives after an admin logged in is still the
// viewer's call: refused, never the admin's (issue 12, the critical hole).
func TestDelayedBodyActsAsItsOwnCaller(t *testing.T) {
	wc := newWebConsole(t)
	wc.team()
	vic := wc.login("vic", "vic's passphrase")
	var admin string
	st, body := wc.delayedCall("Keys/RecoveryShares", "[2,2]", vic, func() { admin = wc.login("alice", "alice's passphrase") })
	if st != http.StatusForbidden || strings.Contains(body, `"result"`) {
		t.Fatalf("viewer's delayed RecoveryShares: %d %s, want 403 and no shares", st, body)
	}
	st, body = wc.delayedCall("Approvals/Approve", `["req_any","as someone else"]`, vic, func() { wc.login("bob", "bob's passphrase") })
	if st != http.StatusForbidden {
		t.Fatalf("viewer's delayed Approve: %d %s, want 403", st, body)
	}
	st, body = wc.delayedCall("Keys/AddOfficer", `["mallory","admin","mallory's passphrase"]`, vic, func() {})
	if st != http.StatusForbidden {
		t.Fatalf("viewer's AddOfficer: %d %s, want 403", st, body)
	}
	// Each cookie answers with its own officer.
	if got := wc.officerOf(vic); got != "vic" {
		t.Fatalf("Session/State with the viewer's cookie names %q", got)
	}
	if got := wc.officerOf(admin); got != "alice" {
		t.Fatalf("Session/State with the admin's cookie names %q", got)
	}
}

// A session that ends while its call's body is on the way does not run.
func TestDelayedBodyAfterLogoutIsRefused(t *testing.T) {
	wc := newWebConsole(t)
	admin := wc.team()
	st, body := wc.delayedCall("Keys/Officers", "[]", admin, func() {
		if st, _, _ := wc.call("Session/Logout", "[]", admin); st != 200 {
			t.Fatalf("logout: %d", st)
		}
	})
	if st != http.StatusUnauthorized {
		t.Fatalf("call whose session ended before its body: %d %s, want 401", st, body)
	}
}

func TestTwoOfficersStayLoggedIn(t *testing.T) {
	wc := newWebConsole(t)
	wc.team()
	bob := wc.login("bob", "bob's passphrase")
	carol := wc.login("carol", "carol's passphrase")
	bob2 := wc.login("bob", "bob's passphrase") // bob's second device
	for cookie, want := range map[string]string{bob: "bob", carol: "carol", bob2: "bob"} {
		if got := wc.officerOf(cookie); got != want {
			t.Errorf("State names %q, want %q", got, want)
		}
		if st, out, _ := wc.call("Keys/Volumes", "[]", cookie); st != 200 {
			t.Errorf("%s's session: %d %s", want, st, out["error"])
		}
	}
}

// An error while finding out whether the console is initialised refuses.
func TestGateFailsClosed(t *testing.T) {
	wc := newWebConsole(t)
	wc.team()
	wc.s.Session.initCheck = func(context.Context) (bool, error) { return false, errors.New("injected: database is locked") }
	for _, m := range []string{"Console/Info", "Keys/Volumes", "Fleet/List"} {
		if st, out, _ := wc.call(m, "[]", ""); st != http.StatusServiceUnavailable {
			t.Errorf("%s without a session while the check fails: %d %s, want 503", m, st, out["result"])
		}
	}
	// The services' own check refuses too (the desktop has no gate).
	if _, err := wc.s.Keys.Volumes(anon(wc.s)); code(err) != CodeUnavailable {
		t.Errorf("Keys.Volumes without a session while the check fails: %v", err)
	}
}

// Ending a session, changing an officer's role or removing them ends their
// sessions; other officers' sessions stay.
func TestSessionsEnd(t *testing.T) {
	s, _ := newSessionServices(t, "web")
	alice := setupAs(t, s, "alice", "alice's passphrase")
	for _, o := range [][2]string{{"bob", "approver"}, {"carol", "approver"}, {"vic", "viewer"}} {
		if _, err := s.Keys.AddOfficer(alice, o[0], o[1], o[0]+"'s passphrase"); err != nil {
			t.Fatal(err)
		}
	}
	bob := loginAs(t, s, "bob", "bob's passphrase")
	bob2 := loginAs(t, s, "bob", "bob's passphrase")
	carol := loginAs(t, s, "carol", "carol's passphrase")
	vic := loginAs(t, s, "vic", "vic's passphrase")
	alive := func(c Caller) bool { _, err := s.Keys.Officers(c); return err == nil }

	if _, err := s.Session.List(vic); code(err) != CodeForbidden {
		t.Fatalf("a viewer lists sessions: %v", err)
	}
	if err := s.Session.End(bob, carol.SessionID); code(err) != CodeForbidden {
		t.Fatalf("an approver ends a session: %v", err)
	}
	list, err := s.Session.List(alice)
	if err != nil || len(list) != 5 {
		t.Fatalf("sessions: %+v %v", list, err)
	}
	if err := s.Session.End(alice, carol.SessionID); err != nil {
		t.Fatal(err)
	}
	if alive(carol) || !alive(bob) || !alive(vic) {
		t.Fatal("End must end that session and only it")
	}
	if _, err := s.Keys.SetRole(alice, "bob", "viewer"); err != nil {
		t.Fatal(err)
	}
	if alive(bob) || alive(bob2) || !alive(vic) {
		t.Fatal("a role change must end every session of that officer, and only theirs")
	}
	if _, err := s.Keys.RemoveOfficer(alice, "vic"); err != nil {
		t.Fatal(err)
	}
	if alive(vic) || !alive(alice) {
		t.Fatal("removing an officer must end their sessions")
	}
	// A role changed by another process (keyholder officers) ends the
	// session at its next call.
	carol = loginAs(t, s, "carol", "carol's passphrase")
	if err := s.Session.custody.SetRole(context.Background(), "alice", "carol", "viewer"); err != nil {
		t.Fatal(err)
	}
	if alive(carol) {
		t.Fatal("a session whose officer's role changed elsewhere stays alive")
	}
	if list, _ := s.Session.List(alice); len(list) != 1 || !list[0].Current {
		t.Fatalf("left: %+v", list)
	}
}

// The app checks the role before a decision reaches the release engine
// (which takes the approver's name as given): a viewer's approval or
// denial never reaches it, and an approver cannot vote twice.
func TestApprovalsRoleAndOneVotePerOfficer(t *testing.T) {
	rc := newReleaseConsole(t)
	s, a := rc.svcs, rc.svcs.Approvals
	for _, o := range [][2]string{{"bob", "approver"}, {"vic", "viewer"}} {
		if _, err := s.Keys.AddOfficer(rc.alice, o[0], o[1], o[0]+"'s passphrase"); err != nil {
			t.Fatal(err)
		}
	}
	p := release.DefaultPolicy()
	p.Approvers = map[release.Class]int{release.ClassFirstBoot: 2}
	if _, err := a.SetPolicy(rc.alice, "", &p); err != nil {
		t.Fatal(err)
	}
	vic := loginAs(t, s, "vic", "vic's passphrase")
	bob := loginAs(t, s, "bob", "bob's passphrase")
	g, _ := agentsim.NewGuest(attest.Genoa, "role-chip")
	rel := rc.ask(t, g, "vm-role")
	if _, err := a.Approve(vic, rel.RequestID, "viewer"); code(err) != CodeForbidden {
		t.Fatalf("viewer approves: %v, want forbidden", err)
	}
	if _, err := a.Deny(vic, rel.RequestID, "viewer"); code(err) != CodeForbidden {
		t.Fatalf("viewer denies: %v, want forbidden", err)
	}
	r, err := a.Get(rc.alice, rel.RequestID)
	if err != nil || r.Status != release.StatusPending || len(r.Approvals) != 0 {
		t.Fatalf("after the viewer's calls: %+v %v", r, err)
	}
	r, err = a.Approve(bob, rel.RequestID, "one")
	if err != nil || r.Status != release.StatusPending || len(r.Approvals) != 1 || r.ApprovalsNeeded != 2 {
		t.Fatalf("first of two approvals: %+v %v", r, err)
	}
	if _, err := a.Approve(bob, rel.RequestID, "me again"); code(err) != CodeConflict {
		t.Fatalf("the same officer approves twice: %v, want conflict", err)
	}
	bob2 := loginAs(t, s, "bob", "bob's passphrase") // another device is still bob
	if _, err := a.Approve(bob2, rel.RequestID, "me again"); code(err) != CodeConflict {
		t.Fatalf("the same officer approves from a second session: %v, want conflict", err)
	}
	r, err = a.Approve(rc.alice, rel.RequestID, "two")
	if err != nil || r.Status != release.StatusApproved || len(r.Approvals) != 2 {
		t.Fatalf("second approval: %+v %v", r, err)
	}
}

// The event stream needs a session, is capped per session, and ends with
// its session.
func TestEventStreamFollowsItsSession(t *testing.T) {
	s, _ := newSessionServices(t, "web")
	hub := NewHub()
	s.Session.events = hub // what the services emit reaches the stream
	h, err := NewHandler(s, HandlerOptions{Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	alice := setupAs(t, s, "alice", "alice's passphrase")
	c := anon(s)
	c.out = &callOut{}
	if _, err := s.Session.Login(c, "alice", "alice's passphrase"); err != nil {
		t.Fatal(err)
	}
	other := c.out.token
	open := func(token string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/api/events", nil)
		if token != "" {
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	if res := open(""); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stream without a session: %d", res.StatusCode)
	}
	var streams []*http.Response
	for range maxStreamsPerSession {
		res := open(other)
		if res.StatusCode != 200 {
			t.Fatalf("stream: %d", res.StatusCode)
		}
		streams = append(streams, res)
	}
	if res := open(other); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stream beyond the cap: %d", res.StatusCode)
	}
	// Read past the greeting so the stream is attached, then end the session.
	r := bufio.NewReader(streams[0].Body)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": keyholder events") {
		t.Fatalf("greeting %q %v", line, err)
	}
	list, _ := s.Session.List(alice)
	for _, si := range list {
		if !si.Current {
			if err := s.Session.End(alice, si.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	// End emits session:changed: the stream checks its session and closes
	// instead of delivering it.
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	if strings.Contains(string(rest), "data:") {
		t.Fatalf("an ended session's stream got events: %q", rest)
	}
}

// A session belongs to the officer who logged in, not to their name: an
// officer removed and added again under the same name and role by another
// process (keyholder officers) is someone else, and the old session ends
// at its next call.
func TestSessionEndsWhenItsOfficerIsReplaced(t *testing.T) {
	s, _ := newSessionServices(t, "web")
	alice := setupAs(t, s, "alice", "alice's passphrase")
	if _, err := s.Keys.AddOfficer(alice, "bob", "approver", "bob's passphrase"); err != nil {
		t.Fatal(err)
	}
	bob := loginAs(t, s, "bob", "bob's passphrase")
	ctx := context.Background()
	if err := s.Session.custody.RemoveOfficer(ctx, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session.custody.AddOfficer(ctx, "alice", "bob", custody.RoleApprover, []byte("another bob's passphrase")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Keys.Officers(bob); code(err) != CodeUnauthorized {
		t.Fatalf("the removed officer's session after a new officer took the name: %v, want %s", err, CodeUnauthorized)
	}
	if list, _ := s.Session.List(alice); len(list) != 1 || list[0].Officer != "alice" {
		t.Fatalf("sessions left: %+v", list)
	}
}

// The console keeps a session token's SHA-256 only, never the token.
func TestSessionTokenIsKeptHashed(t *testing.T) {
	s, _ := newSessionServices(t, "web")
	setupAs(t, s, "alice", "alice's passphrase")
	c := anon(s)
	c.out = &callOut{}
	if _, err := s.Session.Login(c, "alice", "alice's passphrase"); err != nil {
		t.Fatal(err)
	}
	tok := c.out.token
	s.Session.mu.Lock()
	kept := fmt.Sprintf("%+v %+v", s.Session.byID, s.Session.byHash)
	var found bool
	for _, u := range s.Session.byID {
		found = found || u.tokenHash == sha256.Sum256([]byte(tok))
		kept += fmt.Sprintf(" %+v", *u)
	}
	s.Session.mu.Unlock()
	if !found {
		t.Fatal("no session holds the token's hash")
	}
	if strings.Contains(kept, tok) || strings.Contains(kept, fmt.Sprint([]byte(tok))) {
		t.Fatal("the console keeps a session token in the clear")
	}
}

// Each session has its own idle lock and its own recent authentication:
// one officer's two devices lock and re-authenticate separately.
func TestEachSessionLocksAndAuthenticatesAlone(t *testing.T) {
	s, clk := newSessionServices(t, "web")
	alice := setupAs(t, s, "alice", "alice's passphrase")
	laptop := loginAs(t, s, "alice", "alice's passphrase")
	clk.Advance(DefaultIdleLock / 2)
	if _, err := s.Session.Touch(laptop); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultIdleLock / 2)
	if _, err := s.Keys.Volumes(alice); code(err) != CodeUnauthorized {
		t.Fatalf("the idle session: %v, want locked", err)
	}
	if _, err := s.Keys.Volumes(laptop); err != nil {
		t.Fatalf("the session in use: %v", err)
	}
	if _, err := s.Session.Unlock(alice, "alice's passphrase"); err != nil {
		t.Fatal(err)
	}
	// Only the session that entered the passphrase counts as recent.
	if err := s.Session.End(laptop, "ses_none"); code(err) != CodeReauth {
		t.Fatalf("the other session's old login: %v, want %s", err, CodeReauth)
	}
	if err := s.Session.End(alice, "ses_none"); code(err) != CodeNotFound {
		t.Fatalf("the session that re-authenticated: %v, want %s", err, CodeNotFound)
	}
}

// When the store cannot say who a session's officer is now (the database
// is down), a call is refused as unavailable, whatever role it needs: it
// never runs for an officer the console could not check. The session
// itself stays, since the store's failure says nothing about the officer.
func TestSessionFailsClosedWhenTheStoreFails(t *testing.T) {
	s, _ := newSessionServices(t, "web")
	alice := setupAs(t, s, "alice", "alice's passphrase")
	if _, err := s.Session.requireRole(alice); err != nil {
		t.Fatal(err)
	}
	s.Fleet.base.db.Close()
	o, err := s.Session.requireRole(alice)
	if code(err) != CodeUnavailable {
		t.Fatalf("a call while the store is down: officer %+v, error %v, want %s", o, err, CodeUnavailable)
	}
	s.Session.mu.Lock()
	n := len(s.Session.byID)
	s.Session.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d sessions after a store failure, want alice's still there", n)
	}
}
