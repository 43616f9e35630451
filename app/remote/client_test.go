package remote_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
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
)

func otherPin(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

func TestNewRefusesPlainHTTPAndUnpinned(t *testing.T) {
	pin := otherPin(t)
	for _, tc := range []struct {
		name    string
		o       remote.Options
		wantErr error
		wantSub string
	}{
		{"http", remote.Options{URL: "http://console.example:8420", Pin: pin}, remote.ErrNotTLS, ""},
		{"HTTP upper case", remote.Options{URL: "HTTP://console.example:8420", Pin: pin}, remote.ErrNotTLS, ""},
		{"no scheme", remote.Options{URL: "console.example:8420", Pin: pin}, nil, "https://"},
		{"ws", remote.Options{URL: "wss://console.example", Pin: pin}, remote.ErrNotTLS, ""},
		{"unpinned", remote.Options{URL: "https://console.example:8420"}, remote.ErrNoTrust, ""},
		{"pin and CA", remote.Options{URL: "https://console.example", Pin: pin, CAFile: "ca.pem"}, nil, "not both"},
		{"bad pin", remote.Options{URL: "https://console.example", Pin: "abc"}, nil, "64 hex digits"},
		{"path", remote.Options{URL: "https://console.example/api", Pin: pin}, nil, "no path"},
		{"user", remote.Options{URL: "https://officer@console.example", Pin: pin}, nil, "user name"},
		{"missing CA file", remote.Options{URL: "https://console.example", CAFile: filepath.Join(t.TempDir(), "none.pem")}, nil, "read the CA file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := remote.New(tc.o)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Fatalf("error %q does not say %q", err, tc.wantSub)
			}
		})
	}
}

// A console whose key is not the pinned one never sees a request: not the
// officer's passphrase, not a session cookie.
func TestWrongPinRefused(t *testing.T) {
	c := newConsole(t)
	cl, err := remote.New(remote.Options{URL: c.url(), Pin: otherPin(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Call(context.Background(), "", "Session", "Setup", json.RawMessage(`["alice","alice's long passphrase"]`))
	if !errors.Is(err, remote.ErrPinMismatch) {
		t.Fatalf("setup over the wrong pin: %v, want ErrPinMismatch", err)
	}
	var ce *remote.CallError
	if !errors.As(err, &ce) || ce.Code != "unavailable" || !strings.Contains(ce.Message, "does not match the pinned key") {
		t.Fatalf("error %#v does not say the pin did not match", err)
	}
	err = cl.Stream(context.Background(), "some-session", nil, func(string, json.RawMessage) {})
	if !errors.Is(err, remote.ErrPinMismatch) {
		t.Fatalf("event stream over the wrong pin: %v", err)
	}
	if n := c.hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the console over an unpinned connection", n)
	}
}

func TestPinAndCAFileAccepted(t *testing.T) {
	c := newConsole(t)
	raw, _ := hex.DecodeString(c.id.Pin)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, c.id.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]remote.Options{
		"hex pin":    {URL: c.url(), Pin: c.id.Pin},
		"base64 pin": {URL: c.url() + "/", Pin: base64.StdEncoding.EncodeToString(raw)},
		"CA file":    {URL: strings.Replace(c.url(), "127.0.0.1", "localhost", 1), CAFile: ca},
	} {
		t.Run(name, func(t *testing.T) {
			cl, err := remote.New(o)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cl.Call(context.Background(), "", "Session", "State", nil)
			if err != nil {
				t.Fatal(err)
			}
			var st struct{ Initialized *bool }
			if json.Unmarshal(out, &st) != nil || st.Initialized == nil {
				t.Fatalf("state %s", out)
			}
		})
	}
	// A CA that did not sign the console's certificate is refused.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other := selfSigned(t, k)
	if err := os.WriteFile(ca, other, 0o600); err != nil {
		t.Fatal(err)
	}
	cl, err := remote.New(remote.Options{URL: c.url(), CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Call(context.Background(), "", "Session", "State", nil); err == nil || !strings.Contains(err.Error(), "not signed by the given CA") {
		t.Fatalf("a console signed by another CA: %v", err)
	}
}

// Every call carries the session of the window that makes it: two officers
// logged in through one client stay themselves, and a call without a token
// acts for nobody.
func TestCallsCarryTheCallersOwnSession(t *testing.T) {
	c := newConsole(t)
	cl, err := remote.New(remote.Options{URL: c.url(), Pin: c.id.Pin})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(token, svc, m, args string) json.RawMessage {
		t.Helper()
		out, err := cl.Call(ctx, token, svc, m, json.RawMessage(args))
		if err != nil {
			t.Fatalf("%s.%s: %v", svc, m, err)
		}
		return out
	}
	tokenOf := func(out json.RawMessage) string {
		t.Helper()
		var st struct {
			Token   string `json:"token"`
			Officer string `json:"officer"`
		}
		json.Unmarshal(out, &st)
		if st.Token == "" {
			t.Fatalf("no session token in %s", out)
		}
		return st.Token
	}
	alice := tokenOf(call("", "Session", "Setup", `["alice","alice's long passphrase"]`))
	call(alice, "Keys", "AddOfficer", `["bob","approver","bob's long passphrase"]`)
	bob := tokenOf(call("", "Session", "Login", `["bob","bob's long passphrase"]`))
	if alice == bob {
		t.Fatal("two logins share a token")
	}
	officer := func(token string) string {
		var st struct {
			Officer  string `json:"officer"`
			LoggedIn bool   `json:"logged_in"`
		}
		json.Unmarshal(call(token, "Session", "State", "[]"), &st)
		return fmt.Sprintf("%s %v", st.Officer, st.LoggedIn)
	}
	// Interleaved: no call borrows the session of the one before it.
	for _, want := range [][2]string{{alice, "alice true"}, {bob, "bob true"}, {"", " false"}, {alice, "alice true"}, {"", " false"}, {bob, "bob true"}} {
		if got := officer(want[0]); got != want[1] {
			t.Fatalf("state for %q: %q, want %q", want[0][:min(6, len(want[0]))], got, want[1])
		}
	}
	// Without a session the console refuses what needs one.
	_, err = cl.Call(ctx, "", "Keys", "Officers", nil)
	var ce *remote.CallError
	if !errors.As(err, &ce) || ce.Code != "unauthorized" {
		t.Fatalf("a call without a session: %v", err)
	}
	// Bob is an approver: the console refuses him an admin action that it
	// grants alice, so the role is the caller's own.
	if _, err := cl.Call(ctx, bob, "Keys", "AddOfficer", json.RawMessage(`["carol","viewer","carol's long passphrase"]`)); !errors.As(err, &ce) || ce.Code != "forbidden" {
		t.Fatalf("bob adds an officer: %v", err)
	}
	// Logging out ends only that session.
	call(bob, "Session", "Logout", "[]")
	if got := officer(bob); got != " false" {
		t.Fatalf("bob after logout: %q", got)
	}
	if got := officer(alice); got != "alice true" {
		t.Fatalf("alice after bob's logout: %q", got)
	}
	// A method name cannot walk out of /api/call/.
	if _, err := cl.Call(ctx, alice, "Session", "../events", nil); err == nil {
		t.Fatal("a path in the method name was sent")
	}
}

func selfSigned(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// A console that takes the call and never answers (hung, or a network
// that swallows its replies) does not hold the window's call forever: the
// call ends with "unavailable" saying so.
func TestConsoleThatNeverAnswers(t *testing.T) {
	id := newIdentity(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{id.Cert}, MinVersion: tls.VersionTLS13}))
	t.Cleanup(func() { close(release); srv.Close() })

	cl, err := remote.New(remote.Options{URL: "https://" + ln.Addr().String(), Pin: id.Pin, AnswerTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Call(context.Background(), "", "Session", "State", nil)
	var ce *remote.CallError
	if !errors.As(err, &ce) || ce.Code != "unavailable" || !strings.Contains(ce.Message, "did not answer within 100ms") {
		t.Fatalf("a call to a console that never answers: %v", err)
	}
}
