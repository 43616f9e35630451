package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
	"keyholder/internal/testclock"
)

func newSessionServices(t *testing.T, mode string) (*Services, *testclock.Clock) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db := storetest.Open(t, store.Options{})
	c := testclock.New(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC))
	svcs := New(ctx, Config{Mode: mode, Now: c.Now, CustodyOptions: custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, Now: c.Now}}, db, NewHub())
	return svcs, c
}

func code(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestSessionLifecycle(t *testing.T) {
	s, c := newSessionServices(t, "desktop")
	if st, _ := s.Session.State(anon(s)); st.Initialized || st.LoggedIn {
		t.Fatalf("fresh console state = %+v", st)
	}
	alice := setupAs(t, s, "alice", "alice's passphrase")
	if _, err := s.Session.Setup(anon(s), "eve", "eve's passphrase!"); code(err) != CodeConflict {
		t.Fatalf("second setup: %v", err)
	}
	if _, err := s.Keys.AddOfficer(alice, "vic", "viewer", "vic's passphrase"); err != nil {
		t.Fatal(err)
	}
	var vic Caller
	steps := []struct {
		name string
		run  func() error
		want Code
	}{
		{"read volumes", func() error { _, err := s.Keys.Volumes(alice); return err }, ""},
		{"no session reads nothing", func() error { _, err := s.Keys.Volumes(anon(s)); return err }, CodeUnauthorized},
		{"idle lock", func() error { c.Advance(DefaultIdleLock); _, err := s.Keys.Volumes(alice); return err }, CodeUnauthorized},
		{"audit locked too", func() error { _, err := s.Audit.List(alice, audit.Query{}); return err }, CodeUnauthorized},
		{"wrong passphrase does not unlock", func() error { _, err := s.Session.Unlock(alice, "not it at all"); return err }, CodeUnauthorized},
		{"unlock", func() error { _, err := s.Session.Unlock(alice, "alice's passphrase"); return err }, ""},
		{"read again", func() error { _, err := s.Keys.Volumes(alice); return err }, ""},
		{"not fresh for custody changes", func() error {
			c.Advance(DefaultFreshAuth)
			_, err := s.Keys.Rotate(alice, "vol_x")
			return err
		}, CodeReauth},
		{"re-authenticate", func() error { _, err := s.Session.Unlock(alice, "alice's passphrase"); return err }, ""},
		{"fresh rotate reaches custody", func() error { _, err := s.Keys.Rotate(alice, "vol_missing"); return err }, CodeNotFound},
		{"viewer logs in", func() error { var err error; vic, err = tryLogin(s, "vic", "vic's passphrase"); return err }, ""},
		{"viewer may not rotate", func() error { _, err := s.Keys.Rotate(vic, "vol_x"); return err }, CodeForbidden},
		{"viewer may not add officers", func() error { _, err := s.Keys.AddOfficer(vic, "x", "admin", "x's long passphrase"); return err }, CodeForbidden},
		{"admin still logged in", func() error { _, err := s.Keys.Rotate(alice, "vol_missing"); return err }, CodeNotFound},
		{"logout", func() error { return s.Session.Logout(vic) }, ""},
		{"nothing after logout", func() error { _, err := s.Keys.Officers(vic); return err }, CodeUnauthorized},
		{"the other session stays", func() error { _, err := s.Keys.Officers(alice); return err }, ""},
	}
	for _, st := range steps {
		if err := st.run(); code(err) != st.want {
			t.Fatalf("%s: err = %v, want code %q", st.name, err, st.want)
		}
	}
	if st, _ := s.Session.State(anon(s)); !st.KeyServiceUnlocked {
		t.Fatal("logging out of the UI must not lock the key service")
	}
}

func TestWebLoginGate(t *testing.T) {
	s, c := newSessionServices(t, "web")
	h, err := NewHandler(s, HandlerOptions{Hub: NewHub(), AnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, args, cookie string) (*http.Response, map[string]any) {
		req := httptest.NewRequest("POST", "/api/call/"+method, strings.NewReader(args))
		req.Header.Set("X-Keyholder-Client", "1")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Result(), body
	}
	// Before initialisation the console is open (loopback only, see serve).
	if r, _ := call("Keys/Volumes", "[]", ""); r.StatusCode != 200 {
		t.Fatalf("uninitialised: %d", r.StatusCode)
	}
	r, _ := call("Session/Setup", `["alice","alice's passphrase"]`, "")
	var tok string
	for _, ck := range r.Cookies() {
		if ck.Name == sessionCookie {
			tok = ck.Value
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
				t.Fatalf("cookie flags: %+v", ck)
			}
		}
	}
	if r.StatusCode != 200 || len(tok) != 64 {
		t.Fatalf("setup: %d, token %q", r.StatusCode, tok)
	}
	for _, c := range []struct {
		name, method, cookie string
		want                 int
	}{
		{"no cookie", "Keys/Volumes", "", 401},
		{"wrong cookie", "Keys/Volumes", strings.Repeat("0", 64), 401},
		{"no cookie, public state", "Session/State", "", 200},
		{"no cookie, console info", "Console/Info", "", 401},
		{"cookie", "Keys/Volumes", tok, 200},
		{"cookie, audit", "Audit/List", tok, 200},
	} {
		if r, body := call(c.method, "[]", c.cookie); r.StatusCode != c.want {
			t.Errorf("%s: %s = %d %v, want %d", c.name, c.method, r.StatusCode, body, c.want)
		}
	}
	// Wrong passphrase at login: 401 and no cookie.
	if r, _ := call("Session/Login", `["alice","wrong passphrase"]`, ""); r.StatusCode != 401 || len(r.Cookies()) != 0 {
		t.Fatalf("wrong login: %d, cookies %v", r.StatusCode, r.Cookies())
	}
	c.Advance(DefaultIdleLock)
	if r, _ := call("Keys/Volumes", "[]", tok); r.StatusCode != 401 {
		t.Fatalf("idle session still served: %d", r.StatusCode)
	}
	if r, _ := call("Session/Unlock", `["alice's passphrase"]`, tok); r.StatusCode != 200 {
		t.Fatalf("unlock: %d", r.StatusCode)
	}
	if r, _ := call("Keys/Volumes", "[]", tok); r.StatusCode != 200 {
		t.Fatalf("after unlock: %d", r.StatusCode)
	}
	// A login elsewhere starts another session; this one stays.
	r2, _ := call("Session/Login", `["alice","alice's passphrase"]`, "")
	if r2.StatusCode != 200 {
		t.Fatal(r2.StatusCode)
	}
	if r, _ := call("Keys/Volumes", "[]", tok); r.StatusCode != 200 {
		t.Fatalf("old cookie after a new login elsewhere: %d", r.StatusCode)
	}
	// Logout ends it.
	if r, _ := call("Session/Logout", "[]", tok); r.StatusCode != 200 {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	if r, _ := call("Keys/Volumes", "[]", tok); r.StatusCode != 401 {
		t.Fatalf("cookie after logout: %d", r.StatusCode)
	}
	// The event stream is gated too (through a real server: a stream let
	// through answers 200 at once instead of blocking the test).
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("events without a session: %d", res.StatusCode)
	}
}

func TestKeysBackup(t *testing.T) {
	s, _ := newSessionServices(t, "desktop")
	alice := setupAs(t, s, "alice", "alice's passphrase")
	out := filepath.Join(t.TempDir(), "console.khbackup")
	res, err := s.Keys.Backup(alice, out)
	if err != nil || res.BackupInfo == nil || res.BackupInfo.Bytes == 0 {
		t.Fatalf("Backup = %+v, %v", res, err)
	}
	if _, err := s.Keys.Backup(alice, "relative.khbackup"); code(err) != CodeInvalid {
		t.Fatalf("relative path: %v", err)
	}
	web, _ := newSessionServices(t, "web")
	walice := setupAs(t, web, "alice", "alice's passphrase")
	if _, err := web.Keys.Backup(walice, out); code(err) != CodeForbidden {
		t.Fatalf("web backup: %v", err)
	}
}

func TestAuditVerifyService(t *testing.T) {
	s, _ := newSessionServices(t, "desktop")
	if res, err := s.Audit.Verify(anon(s)); err != nil || !res.OK {
		t.Fatalf("uninitialised console: %+v, %v", res, err)
	}
	alice := setupAs(t, s, "alice", "alice's passphrase")
	s.Keys.AddOfficer(alice, "bob", "viewer", "bob's passphrase!")
	if _, err := s.Session.Setup(anon(s), "x", "y"); err == nil {
		t.Fatal("setup twice")
	}
	if _, err := s.Keys.Volumes(alice); err != nil {
		t.Fatal(err)
	}
	res, err := s.Audit.Verify(alice)
	if err != nil || !res.OK || !res.KeyAuthenticated || res.Report.Entries < 2 {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	s.Session.base.db.Exec(`UPDATE audit_log SET actor = 'officer:mallory' WHERE seq = 2`)
	res, err = s.Audit.Verify(alice)
	if err != nil || res.OK || res.FirstBad != 2 {
		t.Fatalf("after tampering: %+v, %v", res, err)
	}
	lines, err := s.Audit.Export(alice)
	if err != nil || strings.Count(lines, "\n") != int(res.Report.Entries) {
		t.Fatalf("export: %d lines, %v", strings.Count(lines, "\n"), err)
	}
}

// callerOf resolves a session token the way the handler does.
func callerOf(s *Services, token string) Caller {
	c, _ := s.Session.authorize(credential{token: token, source: "test", device: s.Session.cfg.Mode}, "Session/State")
	return c
}

// anon is a call without a session.
func anon(s *Services) Caller { return callerOf(s, "") }

// setupAs initialises the console with its first admin and returns that
// admin's caller.
func setupAs(t *testing.T, s *Services, name, pass string) Caller {
	t.Helper()
	c := anon(s)
	c.out = &callOut{}
	if _, err := s.Session.Setup(c, name, pass); err != nil {
		t.Fatal(err)
	}
	return callerOf(s, c.out.token)
}

// loginAs logs an officer in (a new session) and returns their caller.
func loginAs(t *testing.T, s *Services, name, pass string) Caller {
	t.Helper()
	c, err := tryLogin(s, name, pass)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return c
}

func tryLogin(s *Services, name, pass string) (Caller, error) {
	c := anon(s)
	c.out = &callOut{}
	if _, err := s.Session.Login(c, name, pass); err != nil {
		return Caller{}, err
	}
	return callerOf(s, c.out.token), nil
}
