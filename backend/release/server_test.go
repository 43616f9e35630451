package release

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"keyholder/backend/release/wire"
	"keyholder/internal/servertest"
)

func TestHandlerRefusals(t *testing.T) {
	e := newEnv(t)
	h := NewHandler(e.svc, ServerOptions{SourceRate: 1, SourceBurst: 8, Now: e.clk.Now})
	do := func(method, path, body, remote string) (int, wire.ErrorBody) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var eb wire.ErrorBody
		json.Unmarshal(rec.Body.Bytes(), &eb)
		return rec.Code, eb
	}
	cases := []struct {
		name         string
		method, path string
		body         string
		status       int
		code         wire.Code
	}{
		{"challenge", "POST", "/v1/challenge", "", http.StatusOK, ""},
		{"challenge by GET", "GET", "/v1/challenge", "", http.StatusMethodNotAllowed, wire.CodeBadRequest},
		{"garbage body", "POST", "/v1/release", "{", http.StatusBadRequest, wire.CodeBadRequest},
		{"oversized body", "POST", "/v1/release", `{"vm_id":"` + strings.Repeat("a", wire.MaxBody) + `"}`, http.StatusBadRequest, wire.CodeBadRequest},
		{"unknown request", "GET", "/v1/release/req_nope", "", http.StatusNotFound, wire.CodeRequestUnknown},
		{"bad request id", "GET", "/v1/release/a%20b", "", http.StatusBadRequest, wire.CodeBadRequest},
		{"bad rotation confirm", "POST", "/v1/rotation/confirm", `{"request_id":"x"}`, http.StatusBadRequest, wire.CodeBadRequest},
		{"no such endpoint", "GET", "/v2/anything", "", http.StatusBadRequest, wire.CodeBadRequest},
	}
	for _, c := range cases {
		status, eb := do(c.method, c.path, c.body, "192.0.2.1:1234")
		got := wire.Code("")
		if eb.Error != nil {
			got = eb.Error.Code
		}
		if status != c.status || got != c.code {
			t.Errorf("%s: HTTP %d %q, want %d %q", c.name, status, got, c.status, c.code)
		}
	}
	// The source 192.0.2.1 has used its burst of 8; another source has not.
	if status, eb := do("POST", "/v1/challenge", "", "192.0.2.1:1234"); status != http.StatusTooManyRequests || eb.Error.Code != wire.CodeRateLimited {
		t.Fatalf("rate limit: HTTP %d %+v", status, eb.Error)
	}
	if status, _ := do("POST", "/v1/challenge", "", "192.0.2.2:1234"); status != http.StatusOK {
		t.Fatalf("another source: HTTP %d", status)
	}
	// Junk so far: the garbage, oversized and rotation bodies, the unknown
	// and the malformed request IDs, the rate-limited challenge; each counted
	// for the audit's aggregate entry, none audited on its own.
	if got := h.Stats().JunkPending; got != 6 {
		t.Fatalf("junk counted: %d, want 6", got)
	}

	// Per-VM limit: a valid-looking request body, many times for one VM.
	hv := NewHandler(e.svc, ServerOptions{SourceRate: 1000, SourceBurst: 1000, VMRate: 1, VMBurst: 2, JunkBurst: 1000, JunkRate: 1, Now: e.clk.Now})
	g := guest{vm: "vm-limited", vol: e.volume("limited"), chip: 1, meas: 1, launch: 1}
	// First a stranger names the VM in requests without a valid challenge:
	// they are junk, refused, and do not count against the VM.
	for i := 0; i < 10; i++ {
		junk := e.requestNoChallenge(g)
		if i%2 == 1 {
			junk = e.request(g, wire.PurposeBoot, 0).req
			junk.Nonce[5] ^= 1 // forged: the MAC no longer matches
		}
		b, _ := json.Marshal(junk)
		req := httptest.NewRequest("POST", "/v1/release", strings.NewReader(string(b)))
		req.RemoteAddr = "198.51.100.7:999"
		rec := httptest.NewRecorder()
		hv.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("junk request %d: HTTP %d %s", i, rec.Code, rec.Body)
		}
	}
	var last int
	for i := 0; i < 3; i++ {
		b, _ := json.Marshal(e.request(g, wire.PurposeBoot, 0).req)
		req := httptest.NewRequest("POST", "/v1/release", strings.NewReader(string(b)))
		rec := httptest.NewRecorder()
		hv.ServeHTTP(rec, req)
		last = rec.Code
		if i < 2 && rec.Code != http.StatusAccepted {
			t.Fatalf("request %d for the VM: HTTP %d %s", i, rec.Code, rec.Body)
		}
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("third request within the VM's burst of 2: HTTP %d", last)
	}
}

func TestChallengeIssuanceLimits(t *testing.T) {
	e := newEnv(t)
	// 3 per address, 5 per /24 or /64; the clock stands still, so nothing
	// refills.
	h := NewHandler(e.svc, ServerOptions{ChallengeRate: 1, ChallengeBurst: 3, ChallengeNetRate: 1, ChallengeNetBurst: 5, Now: e.clk.Now})
	ask := func(remote string) int {
		req := httptest.NewRequest("POST", "/v1/challenge", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After for %s", remote)
		}
		return rec.Code
	}
	steps := []struct {
		remote string
		want   int
	}{
		{"192.0.2.1:1", 200}, {"192.0.2.1:2", 200}, {"192.0.2.1:3", 200},
		{"192.0.2.1:4", 429},                       // the address's 3 are used
		{"192.0.2.2:1", 200}, {"192.0.2.3:1", 200}, // the /24's 5 are used now
		{"192.0.2.4:1", 429}, // a fresh address of the same /24
		{"192.0.3.4:1", 200}, // another /24
		{"[2001:db8::1]:1", 200}, {"[2001:db8::2]:1", 200}, {"[2001:db8::3]:1", 200},
		{"[2001:db8::4]:1", 200}, {"[2001:db8::ffff:5]:1", 200},
		{"[2001:db8::6]:1", 429},      // the /64's 5 are used, whatever the address
		{"[2001:db8:0:1::1]:1", 200},  // another /64
		{"[::ffff:192.0.2.9]:1", 429}, // a v4-mapped address of the exhausted /24
	}
	for _, s := range steps {
		if got := ask(s.remote); got != s.want {
			t.Errorf("challenge for %s: HTTP %d, want %d", s.remote, got, s.want)
		}
	}
}

// TestForgedEvidenceDoesNotSpendTheVMsAllowance: challenges are free to
// anyone, so holding one proves nothing about the VM a request names. A
// stranger who fetches challenges and sends forged evidence under the real
// guest's VM ID must not get the guest answered 429: only authentic
// evidence counts against a VM.
func TestForgedEvidenceDoesNotSpendTheVMsAllowance(t *testing.T) {
	e := newEnv(t)
	h := NewHandler(e.svc, ServerOptions{SourceRate: 1000, SourceBurst: 1000, VMRate: 1, VMBurst: 2, ChallengeRate: 1000, ChallengeBurst: 1000,
		JunkRate: 1, JunkBurst: 1000, Now: e.clk.Now})
	g := guest{vm: "vm-target", vol: e.volume("target"), chip: 1, meas: 1, launch: 1}
	e.released(g)
	send := func(req *wire.ReleaseRequest, remote string) int {
		b, _ := json.Marshal(req)
		r := httptest.NewRequest("POST", "/v1/release", strings.NewReader(string(b)))
		r.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	stranger := g
	stranger.forged = true
	for i := 0; i < 5; i++ {
		stranger.launch = byte(20 + i)
		if code := send(e.request(stranger, wire.PurposeBoot, 0).req, "198.51.100.7:999"); code != http.StatusForbidden {
			t.Fatalf("forged request %d with a valid challenge: HTTP %d", i, code)
		}
	}
	g.launch = 2
	if code := send(e.request(g, wire.PurposeBoot, 0).req, "192.0.2.50:1"); code != http.StatusOK {
		t.Fatalf("the real guest after a stranger's forged requests: HTTP %d, want 200", code)
	}
	// The guest's own authentic requests still count: the third within
	// the burst of 2 is refused.
	var last int
	for i := 0; i < 2; i++ {
		g.launch = byte(3 + i)
		last = send(e.request(g, wire.PurposeBoot, 0).req, "192.0.2.50:1")
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("third authentic request within the VM's burst of 2: HTTP %d", last)
	}
}

// The release listener cuts off clients that send or read slowly: every
// timeout and the header limit are set (issue 12, item 2).
func TestServerIsBounded(t *testing.T) {
	id, err := LoadOrCreateTLS(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(http.NotFoundHandler(), id, nil)
	servertest.Bounded(t, srv)
}
