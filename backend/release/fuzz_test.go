package release

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"keyholder/internal/testclock"
)

// FuzzChallengeCheck: Check accepts exactly the challenges that carry the
// key's MAC over their first 16 bytes (recomputed here from the format's
// spec) and an expiry after now, and nothing else, whatever the bytes.
func FuzzChallengeCheck(f *testing.F) {
	clk := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	key := bytes.Repeat([]byte{3}, 32)
	c := NewChallenges(hmacKey{key: key}, time.Minute, clk.Now)
	for i := 0; i < 4; i++ {
		n, _, err := c.Issue()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, nonce []byte) {
		_, err := c.Check(nonce)
		want := false
		if len(nonce) == 32 && nonce[0] == 1 {
			m := hmac.New(sha256.New, key)
			m.Write([]byte("keyholder-challenge-v1"))
			m.Write(nonce[:16])
			exp := time.Unix(int64(binary.BigEndian.Uint32(nonce[1:5])), 0)
			want = bytes.Equal(m.Sum(nil)[:16], nonce[16:]) && exp.After(clk.Now())
		}
		if (err == nil) != want {
			t.Fatalf("Check(%x) = %v, want accepted %v", nonce, err, want)
		}
	})
}

// FuzzSourceOf: any RemoteAddr gives a source whose network contains its
// address (or both are the unparsed string).
func FuzzSourceOf(f *testing.F) {
	for _, s := range []string{"192.0.2.1:80", "[2001:db8::1]:443", "[::ffff:10.0.0.1]:1", "[fe80::1%eth0]:2", "garbage", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, remote string) {
		s := sourceOf(remote)
		if s.addr == "" && s.net != "" {
			t.Fatalf("%q: %+v", remote, s)
		}
	})
}
