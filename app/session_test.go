package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/store"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newSessionServices(t *testing.T, mode string) (*Services, *testClock) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &testClock{t: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	svcs := New(ctx, Config{Mode: mode, Now: c.now, CustodyOptions: custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, Now: c.now}}, db, NewHub())
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
	if st, _ := s.Session.State(); st.Initialized || st.LoggedIn {
		t.Fatalf("fresh console state = %+v", st)
	}
	if _, err := s.Session.Setup("alice", "alice's passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session.Setup("eve", "eve's passphrase!"); code(err) != CodeConflict {
		t.Fatalf("second setup: %v", err)
	}
	if _, err := s.Keys.AddOfficer("vic", "viewer", "vic's passphrase"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		run  func() error
		want Code
	}{
		{"read volumes", func() error { _, err := s.Keys.Volumes(); return err }, ""},
		{"idle lock", func() error { c.advance(DefaultIdleLock); _, err := s.Keys.Volumes(); return err }, CodeUnauthorized},
		{"audit locked too", func() error { _, err := s.Audit.List(audit.Query{}); return err }, CodeUnauthorized},
		{"wrong passphrase does not unlock", func() error { _, err := s.Session.Unlock("not it at all"); return err }, CodeUnauthorized},
		{"unlock", func() error { _, err := s.Session.Unlock("alice's passphrase"); return err }, ""},
		{"read again", func() error { _, err := s.Keys.Volumes(); return err }, ""},
		{"not fresh for custody changes", func() error {
			c.advance(DefaultFreshAuth)
			_, err := s.Keys.Rotate("vol_x")
			return err
		}, CodeReauth},
		{"re-authenticate", func() error { _, err := s.Session.Unlock("alice's passphrase"); return err }, ""},
		{"fresh rotate reaches custody", func() error { _, err := s.Keys.Rotate("vol_missing"); return err }, CodeNotFound},
		{"viewer logs in", func() error { _, err := s.Session.Login("vic", "vic's passphrase"); return err }, ""},
		{"viewer may not rotate", func() error { _, err := s.Keys.Rotate("vol_x"); return err }, CodeForbidden},
		{"viewer may not add officers", func() error { _, err := s.Keys.AddOfficer("x", "admin", "x's long passphrase"); return err }, CodeForbidden},
		{"logout", func() error { return s.Session.Logout() }, ""},
		{"nothing after logout", func() error { _, err := s.Keys.Officers(); return err }, CodeUnauthorized},
	}
	for _, st := range steps {
		if err := st.run(); code(err) != st.want {
			t.Fatalf("%s: err = %v, want code %q", st.name, err, st.want)
		}
	}
	if st, _ := s.Session.State(); !st.KeyServiceUnlocked {
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
	c.advance(DefaultIdleLock)
	if r, _ := call("Keys/Volumes", "[]", tok); r.StatusCode != 401 {
		t.Fatalf("idle session still served: %d", r.StatusCode)
	}
	if r, _ := call("Session/Unlock", `["alice's passphrase"]`, tok); r.StatusCode != 200 {
		t.Fatalf("unlock: %d", r.StatusCode)
	}
	if r, _ := call("Keys/Volumes", "[]", tok); r.StatusCode != 200 {
		t.Fatalf("after unlock: %d", r.StatusCode)
	}
	// A login elsewhere ends this session.
	r2, _ := call("Session/Login", `["alice","alice's passphrase"]`, "")
	if r2.StatusCode != 200 {
		t.Fatal(r2.StatusCode)
	}
	if r, _ := call("Keys/Volumes", "[]", tok); r.StatusCode != 401 {
		t.Fatalf("old cookie after a new login: %d", r.StatusCode)
	}
	// The event stream is gated too.
	req := httptest.NewRequest("GET", "/api/events", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("events without a session: %d", rec.Code)
	}
}

func TestKeysBackup(t *testing.T) {
	s, _ := newSessionServices(t, "desktop")
	if _, err := s.Session.Setup("alice", "alice's passphrase"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "console.khbackup")
	info, err := s.Keys.Backup(out)
	if err != nil || info.Bytes == 0 {
		t.Fatalf("Backup = %+v, %v", info, err)
	}
	if _, err := s.Keys.Backup("relative.khbackup"); code(err) != CodeInvalid {
		t.Fatalf("relative path: %v", err)
	}
	web, _ := newSessionServices(t, "web")
	web.Session.Setup("alice", "alice's passphrase")
	if _, err := web.Keys.Backup(out); code(err) != CodeForbidden {
		t.Fatalf("web backup: %v", err)
	}
}

func TestAuditVerifyService(t *testing.T) {
	s, _ := newSessionServices(t, "desktop")
	if res, err := s.Audit.Verify(); err != nil || !res.OK {
		t.Fatalf("uninitialised console: %+v, %v", res, err)
	}
	s.Session.Setup("alice", "alice's passphrase")
	s.Keys.AddOfficer("bob", "viewer", "bob's passphrase!")
	if _, err := s.Session.Setup("x", "y"); err == nil {
		t.Fatal("setup twice")
	}
	if _, err := s.Keys.Volumes(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Audit.Verify()
	if err != nil || !res.OK || !res.KeyAuthenticated || res.Report.Entries < 2 {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	s.Session.base.db.Exec(`UPDATE audit_log SET actor = 'officer:mallory' WHERE seq = 2`)
	res, err = s.Audit.Verify()
	if err != nil || res.OK || res.FirstBad != 2 {
		t.Fatalf("after tampering: %+v, %v", res, err)
	}
	lines, err := s.Audit.Export()
	if err != nil || strings.Count(lines, "\n") != int(res.Report.Entries) {
		t.Fatalf("export: %d lines, %v", strings.Count(lines, "\n"), err)
	}
}
