package release

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"keyholder/backend/release/wire"
	"keyholder/internal/testclock"
)

// hmacKey is a ChallengeKey with a fixed key (custody derives the real one
// from the master key; custody's tests cover that).
type hmacKey struct {
	key    []byte
	locked bool
}

func (k hmacKey) ChallengeMAC(msg []byte) ([]byte, error) {
	if k.locked {
		return nil, errLockedForTest
	}
	m := hmac.New(sha256.New, k.key)
	m.Write(msg)
	return m.Sum(nil), nil
}

var errLockedForTest = errors.New("locked")

func TestChallenges(t *testing.T) {
	clk := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	key := hmacKey{key: bytes.Repeat([]byte{1}, 32)}
	n := NewChallenges(key, 60*time.Second, clk.Now)
	a, exp, err := n.Issue()
	if err != nil || len(a) != wire.NonceSize || !exp.Equal(clk.Now().Add(60*time.Second)) {
		t.Fatalf("issue: %x %v %v", a, exp, err)
	}
	b, _, _ := n.Issue()
	if bytes.Equal(a, b) {
		t.Fatal("two equal nonces")
	}
	flip := func(i int) []byte { x := bytes.Clone(a); x[i] ^= 1; return x }
	other, _, _ := NewChallenges(hmacKey{key: bytes.Repeat([]byte{2}, 32)}, 0, clk.Now).Issue()
	cases := []struct {
		name  string
		nonce []byte
		wait  time.Duration
		want  error
	}{
		{"issued", a, 0, nil},
		{"checked again (Check keeps no state)", a, 0, nil},
		{"MAC changed", flip(wire.NonceSize - 1), 0, ErrNonceUnknown},
		{"randomness changed", flip(8), 0, ErrNonceUnknown},
		{"expiry moved", flip(4), 0, ErrNonceUnknown},
		{"version changed", flip(0), 0, ErrNonceUnknown},
		{"short", a[:16], 0, ErrNonceUnknown},
		{"empty", nil, 0, ErrNonceUnknown},
		{"another console's key", other, 0, ErrNonceUnknown},
		{"just before expiry", b, 59 * time.Second, nil},
		{"at expiry", b, time.Second, ErrNonceUnknown},
	}
	for _, c := range cases {
		clk.Advance(c.wait)
		if _, err := n.Check(c.nonce); !errors.Is(err, c.want) && !(err == nil && c.want == nil) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	// A locked key service issues and accepts nothing, and says so (not
	// "unknown nonce": the guest should retry, not start over).
	locked := NewChallenges(hmacKey{locked: true}, 0, clk.Now)
	if _, _, err := locked.Issue(); !errors.Is(err, errLockedForTest) {
		t.Fatalf("issue while locked: %v", err)
	}
	c, _, _ := n.Issue()
	if _, err := locked.Check(c); !errors.Is(err, errLockedForTest) {
		t.Fatalf("check while locked: %v", err)
	}
	// This process's record of used nonces: the first claim wins, and
	// expired entries are forgotten.
	exp, err = n.Check(c)
	if err != nil || !n.claim(c, exp) || n.claim(c, exp) {
		t.Fatalf("claim: %v", err)
	}
	clk.Advance(2 * time.Minute)
	d, dexp, _ := n.Issue()
	n.claim(d, dexp)
	if got := n.usedLocally(); got != 1 {
		t.Fatalf("%d nonces remembered after the first expired, want 1", got)
	}
}

func TestLimiter(t *testing.T) {
	clk := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
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
	clk.Advance(500 * time.Millisecond)
	if !l.Allow("a") || l.Allow("a") {
		t.Fatal("refill at 2/s: one token after 0.5 s")
	}
	clk.Advance(time.Hour)
	for i := 0; i < 3; i++ {
		if !l.Allow("a") {
			t.Fatal("bucket did not refill to its burst")
		}
	}
	if l.Allow("a") {
		t.Fatal("bucket refilled beyond its burst")
	}
	// Peek tells without taking.
	if l.Peek("a") || !l.Peek("never seen") {
		t.Fatal("peek: an empty bucket has a token, or an unknown key has none")
	}
	clk.Advance(500 * time.Millisecond)
	if !l.Peek("a") || !l.Peek("a") || !l.Allow("a") || l.Peek("a") {
		t.Fatal("peek took a token, or missed the refill")
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
