package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyholder/app/remote"
	"keyholder/backend/custody"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// sharedConsole serves a web console (real services and store) over TLS
// and returns its URL, its pin and its event hub.
func sharedConsole(t *testing.T) (url, pin string, hub *Hub) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db := storetest.Open(t, store.Options{})
	hub = NewHub()
	svcs := New(ctx, Config{Mode: "web", CustodyOptions: custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}}}, db, hub)
	h, err := NewHandler(svcs, HandlerOptions{Hub: hub, AnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h)
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: k}}}))
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String(), wire.SPKIPin(leaf), hub
}

// The desktop connected to a shared console: a wrong pin or plain http is
// refused and nothing is remembered; the right pin is remembered without
// any secret; the window logs in through the bridge and a pending approval
// on the console raises a native notification on the desktop.
func TestDesktopConsoleRemote(t *testing.T) {
	url, pin, hub := sharedConsole(t)
	choice := filepath.Join(t.TempDir(), "keyholder", "desktop.json")
	notes := make(chan string, 8)
	events := &DesktopEvents{Notify: func(title, body string) error { notes <- title + ": " + body; return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := false
	d := NewDesktopConsole(ctx, events, DesktopConsoleOptions{ChoicePath: choice, StartLocal: func() (*Handler, func(), error) {
		started = true
		return nil, func() {}, nil
	}})
	defer d.Close()
	b := NewDesktopBridge(ctx, d)
	if err := d.Resume(false); err != nil {
		t.Fatal(err)
	}
	if ci, _ := b.Connection(); ci.Mode != ModeChoose {
		t.Fatalf("first start: mode %q, want choose", ci.Mode)
	}
	if _, err := b.Call("", "Session", "State", nil); code(err) != CodeUnavailable {
		t.Fatalf("a call before the choice: %v", err)
	}
	other := strings.Repeat("0", 64)
	for _, c := range []struct{ url, pin, want string }{
		{url, other, "does not match the pinned key"},
		{strings.Replace(url, "https", "http", 1), pin, "https://"},
		{url, "", "must be pinned"},
	} {
		if _, err := b.Connect(c.url, c.pin, ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("connect %s pin %.8s: %v, want %q", c.url, c.pin, err, c.want)
		}
		if _, err := os.Stat(choice); !os.IsNotExist(err) {
			t.Fatalf("a refused console was remembered (%v)", err)
		}
	}
	ci, err := b.Connect(url, pin, "")
	if err != nil || ci.Mode != ModeRemote || ci.URL != url {
		t.Fatalf("connect: %+v %v", ci, err)
	}
	out, err := b.Call("", "Session", "Setup", json.RawMessage(`["alice","alice's long passphrase"]`))
	if err != nil {
		t.Fatal(err)
	}
	var st SessionState
	json.Unmarshal(out, &st)
	if st.Token == "" || st.Officer != "alice" {
		t.Fatalf("setup through the bridge: %s", out)
	}
	saved, err := os.ReadFile(choice)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{st.Token, "alice's long passphrase"} {
		if strings.Contains(string(saved), secret) {
			t.Fatalf("the choice file holds a secret: %s", saved)
		}
	}
	if !strings.Contains(string(saved), pin) || started {
		t.Fatalf("choice file %s (local console started: %v)", saved, started)
	}
	// The window's session opens: follow the console's events.
	b.Watch(st.Token)
	req := map[string]any{"id": "req_remote", "vm_id": "vm-7", "class": "first_boot", "status": "pending"}
	for deadline := time.Now().Add(30 * time.Second); ; {
		// Emit until the stream is up (the first emits may precede it).
		hub.Emit(EventApprovalsChanged, req)
		select {
		case n := <-notes:
			if !strings.Contains(n, "approval needed") || !strings.Contains(n, "vm-7") {
				t.Fatalf("notification %q", n)
			}
			// Once per request, however often the console repeats it.
			hub.Emit(EventApprovalsChanged, req)
			hub.Emit(EventApprovalsChanged, map[string]any{"id": "req_other", "vm_id": "vm-8", "class": "migration", "status": "pending"})
			if n := <-notes; !strings.Contains(n, "vm-8") {
				t.Fatalf("second notification %q", n)
			}
			if s := d.Info().State; s == nil || !s.Connected || !s.Streaming {
				t.Fatalf("connection state %+v", s)
			}
			// Forget: back to the choice, the file gone.
			if ci, err := b.Forget(); err != nil || ci.Mode != ModeChoose {
				t.Fatalf("forget: %+v %v", ci, err)
			}
			if _, err := os.Stat(choice); !os.IsNotExist(err) {
				t.Fatalf("forgotten console still remembered (%v)", err)
			}
			return
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no notification from the console's event stream")
			}
		}
	}
}

func TestDesktopConsoleLocalChoice(t *testing.T) {
	choice := filepath.Join(t.TempDir(), "desktop.json")
	starts := 0
	d := NewDesktopConsole(context.Background(), nil, DesktopConsoleOptions{ChoicePath: choice, StartLocal: func() (*Handler, func(), error) {
		starts++
		return nil, func() {}, nil
	}})
	if ci, err := d.UseLocal(); err != nil || ci.Mode != ModeLocal || starts != 1 {
		t.Fatalf("use local: %+v %v (%d starts)", ci, err, starts)
	}
	if _, err := d.Forget(); code(err) != CodeConflict {
		t.Fatalf("forget a running local console: %v", err)
	}
	if _, err := d.Connect("https://127.0.0.1:1", strings.Repeat("0", 64), ""); err == nil {
		t.Fatal("a local window connected elsewhere")
	}
	// The next start remembers.
	d2 := NewDesktopConsole(context.Background(), nil, DesktopConsoleOptions{ChoicePath: choice, StartLocal: func() (*Handler, func(), error) {
		starts++
		return nil, func() {}, nil
	}})
	if err := d2.Resume(false); err != nil || d2.Info().Mode != ModeLocal || starts != 2 {
		t.Fatalf("resume: %v %+v", err, d2.Info())
	}
	// Without a choice, a computer that holds a store is its own console.
	d3 := NewDesktopConsole(context.Background(), nil, DesktopConsoleOptions{StartLocal: func() (*Handler, func(), error) { return nil, func() {}, nil }})
	if err := d3.Resume(true); err != nil || d3.Info().Mode != ModeLocal {
		t.Fatalf("resume with a store: %v %+v", err, d3.Info())
	}
}

var _ http.Handler = (*DesktopConsole)(nil)

// A window already connected to a shared console that is asked to use
// another console (or this computer's) is refused, and the refused choice
// is not remembered either: otherwise a refused Connect to an attacker's
// console with the attacker's pin would take effect at the next start,
// and the officer's passphrase would go there at the next login.
func TestDesktopConsoleRefusedSwitchNotRemembered(t *testing.T) {
	url, pin, _ := sharedConsole(t)
	otherURL, otherPin, _ := sharedConsole(t)
	choice := filepath.Join(t.TempDir(), "keyholder", "desktop.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := NewDesktopConsole(ctx, nil, DesktopConsoleOptions{ChoicePath: choice, StartLocal: func() (*Handler, func(), error) {
		t.Error("the local console started in a remote window")
		return nil, func() {}, nil
	}})
	defer d.Close()
	b := NewDesktopBridge(ctx, d)
	if _, err := b.Connect(url, pin, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Connect(otherURL, otherPin, ""); code(err) != CodeConflict {
		t.Fatalf("connect to a second console: %v, want conflict", err)
	}
	if _, err := b.UseLocal(); code(err) != CodeConflict {
		t.Fatalf("use local in a remote window: %v, want conflict", err)
	}
	c, ok, err := remote.LoadChoice(choice)
	if err != nil || !ok || c.Mode != ModeRemote || c.URL != url || c.Pin != pin {
		t.Fatalf("remembered choice after refused switches: %+v %v %v, want %s with pin %.8s", c, ok, err, url, pin)
	}
	if ci := d.Info(); ci.Mode != ModeRemote || ci.URL != url {
		t.Fatalf("the window's console changed: %+v", ci)
	}
}
