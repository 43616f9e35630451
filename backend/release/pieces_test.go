package release

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"keyholder/backend/release/wire"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestNonces(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	n := NewNonces(60*time.Second, 3, clk.Now)
	a, exp, err := n.Issue()
	if err != nil || len(a) != wire.NonceSize || !exp.Equal(clk.Now().Add(60*time.Second)) {
		t.Fatalf("issue: %x %v %v", a, exp, err)
	}
	b, _, _ := n.Issue()
	c, _, _ := n.Issue()
	if bytes.Equal(a, b) {
		t.Fatal("two equal nonces")
	}
	if _, _, err := n.Issue(); !errors.Is(err, ErrTooManyNonces) {
		t.Fatalf("fourth outstanding nonce: err = %v", err)
	}
	forged := bytes.Clone(a)
	forged[0] ^= 1
	steps := []struct {
		name  string
		nonce []byte
		wait  time.Duration
		want  error
	}{
		{"never issued", forged, 0, ErrNonceUnknown},
		{"short", a[:16], 0, ErrNonceUnknown},
		{"first use", a, 0, nil},
		{"second use", a, 0, ErrNonceUnknown},
		{"just before expiry", b, 59 * time.Second, nil},
		{"at expiry", c, time.Second, ErrNonceUnknown},
		{"expired one is gone too", c, 0, ErrNonceUnknown},
	}
	for _, s := range steps {
		clk.Add(s.wait)
		if err := n.Consume(s.nonce); !errors.Is(err, s.want) && !(err == nil && s.want == nil) {
			t.Errorf("%s: err = %v, want %v", s.name, err, s.want)
		}
	}
	if n.Outstanding() != 0 {
		t.Fatalf("%d outstanding after all were used", n.Outstanding())
	}
	// Expired nonces are swept, making room.
	for i := 0; i < 3; i++ {
		n.Issue()
	}
	clk.Add(2 * time.Minute)
	if _, _, err := n.Issue(); err != nil {
		t.Fatalf("issue after expiry sweep: %v", err)
	}
}

func TestLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := NewLimiter(2, 3, clk.Now)
	var got []bool
	for i := 0; i < 4; i++ {
		got = append(got, l.Allow("a"))
	}
	if !got[0] || !got[1] || !got[2] || got[3] {
		t.Fatalf("burst of 3: %v", got)
	}
	if !l.Allow("b") {
		t.Fatal("another key is limited by the first")
	}
	clk.Add(500 * time.Millisecond)
	if !l.Allow("a") || l.Allow("a") {
		t.Fatal("refill at 2/s: one token after 0.5 s")
	}
	clk.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if !l.Allow("a") {
			t.Fatal("bucket did not refill to its burst")
		}
	}
	if l.Allow("a") {
		t.Fatal("bucket refilled beyond its burst")
	}
}

func TestTLSIdentity(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	id, err := LoadOrCreateTLS(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, TLSKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	again, err := LoadOrCreateTLS(dir, now)
	if err != nil || again.Pin != id.Pin || len(id.Pin) != 64 {
		t.Fatalf("reload changed the pin: %s vs %s (%v)", again.Pin, id.Pin, err)
	}
	// A pinned client connects; a client pinned to another key does not.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", id.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	other, _ := LoadOrCreateTLS(t.TempDir(), now)
	for _, c := range []struct {
		name string
		pin  string
		ok   bool
	}{{"right pin", id.Pin, true}, {"other pin", other.Pin, false}} {
		cfg, _ := wire.PinnedTLSConfig(c.pin)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if c.ok != (err == nil) {
			t.Errorf("%s: dial err = %v", c.name, err)
		}
		if err == nil {
			if conn.ConnectionState().Version != tls.VersionTLS13 {
				t.Errorf("%s: not TLS 1.3", c.name)
			}
			conn.Close()
		} else if !errors.Is(err, wire.ErrPinMismatch) {
			t.Errorf("%s: err = %v, want ErrPinMismatch", c.name, err)
		}
	}
	// A damaged key file is refused without quoting it.
	os.WriteFile(filepath.Join(dir, TLSKeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	if _, err := LoadOrCreateTLS(dir, now); err == nil || bytes.Contains([]byte(err.Error()), []byte("AAAA")) {
		t.Fatalf("damaged key: err = %v", err)
	}
}
