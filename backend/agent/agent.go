// Package agent is the guest side of the key release protocol, used by
// cmd/keyholder-agent inside a confidential VM: it asks the console for a
// challenge, makes an ephemeral HPKE key, binds both into an SEV-SNP report,
// asks for the release, waits politely while an officer decides, and opens
// the sealed secret. It also sends heartbeats and confirms rotations, and
// drives cryptsetup with the secret on a pipe (never argv, never disk).
//
// It imports neither the console's store nor any UI code; the wire format
// lives in keyholder/backend/release/wire.
package agent

import (
	"bytes"
	"context"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"keyholder/backend/release/wire"
)

// Evidencer produces attestation evidence whose REPORT_DATA is reportData:
// the SEV-SNP guest device on real hardware, a simulated chip in tests and
// demos.
type Evidencer interface {
	Evidence(ctx context.Context, reportData [64]byte) (wire.Evidence, error)
}

// AKBinder is an Evidencer that also sends a vTPM attestation: the
// transcript binds its attestation key (wire.Binding.AKDigest), and its quote is
// made over REPORT_DATA.
type AKBinder interface {
	AKDigest(ctx context.Context) ([]byte, error)
}

// Client talks to one console's release API over pinned TLS 1.3.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the release API at consoleURL (https)
// trusting only the key whose SPKI SHA-256 is pin.
func NewClient(consoleURL, pin string) (*Client, error) {
	u, err := url.Parse(consoleURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("console URL %q must be https://HOST:PORT", consoleURL)
	}
	cfg, err := wire.PinnedTLSConfig(pin)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: cfg, TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost: 2, ForceAttemptHTTP2: false}
	return &Client{base: strings.TrimRight(u.String(), "/"), hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

// NewClientWith returns a client over an existing HTTP client (tests, and
// the demo's in-process fleet).
func NewClientWith(base string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(base, "/"), hc: hc}
}

// RefusedError is a refusal from the console.
type RefusedError struct {
	Status int
	Reason *wire.Error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the console refused (HTTP %d): %s", e.Status, e.Reason.Error())
}

func (e *RefusedError) Unwrap() error { return e.Reason }

// Code returns the reason code of a refusal, or "" for other errors.
func Code(err error) wire.Code {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	status, _, err := c.doH(ctx, method, path, body, out)
	return status, err
}

// doH is do that also returns the answer's headers.
func (c *Client) doH(ctx context.Context, method, path string, body, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb wire.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
			return resp.StatusCode, resp.Header, &RefusedError{Status: resp.StatusCode, Reason: eb.Error}
		}
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: bad answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

// longPollHeader is release.LongPollHeader (the agent does not import the
// engine): the console holds polls until the request changes.
const longPollHeader = "Keyholder-Long-Poll"

// longPollWait is how long the agent asks the console to hold a poll
// (release.MaxPollWait).
const longPollWait = 25 * time.Second

// Request says what the agent asks for.
type Request struct {
	VMID       string
	VolumeID   string
	Generation int // as the volume's token names it; 0: current
	Purpose    wire.Purpose
	// MaxWait bounds how long to wait for an officer; zero means 20 minutes.
	MaxWait time.Duration
	// Waiting is called before each wait while an officer must decide (may
	// be nil); the same request may be reported many times.
	Waiting func(rel *wire.Release)
	// PollEvery overrides the console's Retry-After (tests, demos).
	PollEvery time.Duration
	// Retrying is called when the console cannot answer yet (unreachable,
	// busy, key service locked) and the agent will ask again (may be nil).
	Retrying func(err error)
	// Backoff shapes the waits between rounds over the consoles; its zero
	// value is the production default (see Backoff).
	Backoff Backoff
}

// isNetwork reports whether err is a failure to reach the console (as
// opposed to a refusal or a local problem such as the SEV-SNP device).
func isNetwork(err error) bool {
	if errors.Is(err, wire.ErrPinMismatch) {
		return false // not the console this volume trusts: do not insist
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// Result is a released secret (and, for a rotation, the next one). The
// caller wipes the secrets (Wipe) as soon as cryptsetup has them.
type Result struct {
	RequestID     string
	Class         string
	Generation    int
	Secret        []byte
	NewGeneration int
	NewSecret     []byte
	Simulated     bool
}

// Wipe overwrites the secrets.
func (r *Result) Wipe() {
	if r != nil {
		clear(r.Secret)
		clear(r.NewSecret)
	}
}

// prepared is one challenge with its key and evidence.
type prepared struct {
	key hpke.PrivateKey
	req wire.ReleaseRequest
}

func (c *Client) prepare(ctx context.Context, ev Evidencer, r Request) (*prepared, error) {
	var ch wire.Challenge
	if _, err := c.do(ctx, http.MethodPost, "/v1/challenge", nil, &ch); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	k, pub, err := wire.NewKeyPair()
	if err != nil {
		return nil, err
	}
	var ak []byte
	if b, ok := ev.(AKBinder); ok {
		if ak, err = b.AKDigest(ctx); err != nil {
			return nil, fmt.Errorf("vTPM attestation key: %w", err)
		}
	}
	req := wire.ReleaseRequest{Version: wire.Version, VMID: r.VMID, VolumeID: r.VolumeID, Purpose: r.Purpose, Generation: r.Generation,
		Nonce: ch.Nonce, HPKEPublicKey: pub}
	rd, err := wire.Transcript(req.Binding(ak))
	if err != nil {
		return nil, err
	}
	evidence, err := ev.Evidence(ctx, rd)
	if err != nil {
		return nil, fmt.Errorf("attestation report: %w", err)
	}
	req.Evidence = evidence
	return &prepared{key: k, req: req}, nil
}

// Challenge asks the console for a fresh challenge once.
func (c *Client) Challenge(ctx context.Context) (*wire.Challenge, error) {
	var ch wire.Challenge
	if _, err := c.do(ctx, http.MethodPost, "/v1/challenge", nil, &ch); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	return &ch, nil
}

// Send posts a release request made beforehand (evidence bound to a
// challenge from Challenge) once and returns the console's answer: no
// retry, no waiting for officers. keyholder bench release --wire sends
// evidence signed before the storm with it, so that the guests' signing is
// not timed.
func (c *Client) Send(ctx context.Context, req *wire.ReleaseRequest) (*wire.Release, error) {
	var rel wire.Release
	if _, err := c.do(ctx, http.MethodPost, "/v1/release", req, &rel); err != nil {
		return nil, err
	}
	return &rel, nil
}

// Obtain runs the release protocol at this console: challenge, evidence,
// release, wait while pending, open. A nonce_unknown refusal (for example
// after a console restart) is retried with a fresh challenge; a console
// that cannot answer yet is asked again with back-off until MaxWait.
func (c *Client) Obtain(ctx context.Context, ev Evidencer, r Request) (*Result, error) {
	return PoolOf(c).Obtain(ctx, ev, r)
}

// begin asks for a challenge and the release once; a nonce_unknown refusal
// is retried once with a fresh challenge.
//
// longPoll reports that the console holds a poll until the request changes
// (release.LongPollHeader), so the agent polls again at once instead of
// sleeping between polls.
func (c *Client) begin(ctx context.Context, ev Evidencer, r Request, rel *wire.Release) (p *prepared, longPoll bool, err error) {
	for attempt := 0; ; attempt++ {
		p, err = c.prepare(ctx, ev, r)
		if err == nil {
			var hdr http.Header
			_, hdr, err = c.doH(ctx, http.MethodPost, "/v1/release", &p.req, rel)
			longPoll = hdr.Get(longPollHeader) != ""
		}
		if err == nil {
			return p, longPoll, nil
		}
		if Code(err) == wire.CodeNonceUnknown && attempt == 0 {
			continue
		}
		return nil, false, err
	}
}

func open(p *prepared, rel *wire.Release) (*Result, error) {
	res := &Result{RequestID: rel.RequestID, Class: rel.Class, Generation: rel.Generation, Simulated: rel.Simulated}
	var err error
	res.Secret, err = wire.Open(p.key, rel.RequestID, p.req.VolumeID, uint32(rel.Generation), rel.Sealed)
	if err != nil {
		return nil, err
	}
	if rel.NewGeneration != 0 {
		res.NewGeneration = rel.NewGeneration
		res.NewSecret, err = wire.Open(p.key, rel.RequestID, p.req.VolumeID, uint32(rel.NewGeneration), rel.NewSealed)
		if err != nil {
			res.Wipe()
			return nil, err
		}
	}
	return res, nil
}

// Heartbeat sends fresh evidence once.
func (c *Client) Heartbeat(ctx context.Context, ev Evidencer, r Request) (*wire.Heartbeat, error) {
	r.Purpose = wire.PurposeHeartbeat
	for attempt := 0; ; attempt++ {
		p, err := c.prepare(ctx, ev, r)
		if err != nil {
			return nil, err
		}
		var hb wire.Heartbeat
		_, err = c.do(ctx, http.MethodPost, "/v1/heartbeat", &p.req, &hb)
		if Code(err) == wire.CodeNonceUnknown && attempt == 0 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &hb, nil
	}
}

// ConfirmRotation tells the console the volume opens with the new
// generation, proving it holds the new secret.
func (c *Client) ConfirmRotation(ctx context.Context, vmID, volumeID string, res *Result) error {
	if res.NewGeneration == 0 {
		return errors.New("no rotation to confirm")
	}
	body := wire.RotationConfirm{RequestID: res.RequestID, VMID: vmID, VolumeID: volumeID, Generation: res.NewGeneration,
		Proof: wire.RotationProof(res.NewSecret, res.RequestID, volumeID, res.NewGeneration)}
	_, err := c.do(ctx, http.MethodPost, "/v1/rotation/confirm", &body, nil)
	return err
}
