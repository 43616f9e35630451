package release

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"keyholder/backend/release/wire"
	"keyholder/internal/testclock"
)

func TestSourceOf(t *testing.T) {
	cases := []struct{ remote, addr, net string }{
		{"192.0.2.7:1234", "192.0.2.7", "192.0.2.0/24"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"[::ffff:198.51.100.9]:80", "198.51.100.9", "198.51.100.0/24"},
		{"[fe80::1%eth0]:80", "fe80::1", "fe80::/64"},
		{"pipe", "pipe", "pipe"},
	}
	for _, c := range cases {
		if got := sourceOf(c.remote); got.addr != c.addr || got.net != c.net {
			t.Errorf("sourceOf(%q) = %+v, want %s in %s", c.remote, got, c.addr, c.net)
		}
	}
}

func TestJunkLogIsBounded(t *testing.T) {
	clk := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	j := newJunkLog(clk.Now)
	// Many networks: beyond maxJunkNets they are counted together.
	for i := 0; i < maxJunkNets+50; i++ {
		j.count(sourceOf(fmt.Sprintf("10.%d.%d.1:1", i/256, i%256)), wire.CodeBadRequest)
	}
	// Many addresses of one network: beyond maxJunkAddrs they are counted
	// together.
	for i := 0; i < maxJunkAddrs+10; i++ {
		j.count(sourceOf(fmt.Sprintf("10.0.0.%d:1", i+2)), wire.CodeNonceUnknown)
	}
	if j.pending() != maxJunkNets+50+maxJunkAddrs+10 {
		t.Fatalf("pending = %d", j.pending())
	}
	clk.Advance(time.Minute)
	nets, since, now := j.take()
	if len(nets) != maxJunkNets+1 || j.pending() != 0 {
		t.Fatalf("%d networks kept, %d pending after take", len(nets), j.pending())
	}
	if n := nets["10.0.0.0/24"]; len(n.addrs) != maxJunkAddrs || n.others != 11 || n.total != maxJunkAddrs+11 {
		t.Fatalf("10.0.0.0/24: %d addresses, %d others, %d in all", len(n.addrs), n.others, n.total)
	}
	if n := nets[otherNets]; n.total != 50 || len(n.addrs) != 0 || n.others != 50 {
		t.Fatalf("other networks: %+v", n)
	}
	es := junkEntries(nets, since, now)
	if len(es) != maxJunkNets+1 {
		t.Fatalf("%d entries for %d networks", len(es), len(nets))
	}
	for _, e := range es {
		if e.Subject == "10.0.0.0/24" {
			want := "43 request(s) refused before showing a valid challenge since 2026-01-01T00:00:00Z: bad_request 1, nonce_unknown 42, from 10.0.0.1 (1), 10.0.0.10 (1)"
			if !strings.HasPrefix(e.Reason, want) || !strings.HasSuffix(e.Reason, ", other addresses (11)") || e.Action != "release.junk" {
				t.Errorf("entry: %+v", e)
			}
		}
	}
}
