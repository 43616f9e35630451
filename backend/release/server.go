package release

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"keyholder/backend/release/wire"
)

// ServerOptions configures the release API's HTTP face. Zero values mean
// the defaults named.
type ServerOptions struct {
	// SourceRate and SourceBurst limit every request per client address:
	// 20/s, burst 40.
	SourceRate  float64
	SourceBurst int
	// VMRate and VMBurst limit release and heartbeat requests per VM ID:
	// 2/s, burst 10. Only a request with authentic evidence (a genuine
	// report binding the VM ID) counts against its VM: challenges are free
	// to anyone, and a stranger must not be able to spend a guest's
	// allowance.
	VMRate  float64
	VMBurst int
	// ChallengeRate and ChallengeBurst limit challenges per client address
	// (10/s, burst 40: guests behind one NAT, or the demo's fleet on
	// loopback, share it); ChallengeNetRate and ChallengeNetBurst per /24
	// (IPv4) or /64 (IPv6) network (100/s, burst 1000: a fleet may boot
	// behind one network).
	ChallengeRate     float64
	ChallengeBurst    int
	ChallengeNetRate  float64
	ChallengeNetBurst int
	// JunkRate and JunkBurst limit junk (requests refused before they
	// showed a valid challenge, junk.go) per client address: 1/s, burst 20.
	// An address over it is refused before its body is read.
	JunkRate  float64
	JunkBurst int
	// Reading bounds the request bodies being read and decoded at once (the
	// memory a request holds before it is authenticated): 32. Waiting bounds
	// the requests waiting for one of those places (256); a request beyond
	// that is answered 503 with Retry-After at once.
	Reading int
	Waiting int
	Log     *slog.Logger
	Now     func() time.Time
}

// Handler serves the release API (see package wire for the messages). It is
// its own listener's handler and never shares a port with the officer UI.
//
// Checks run cheapest first, and nothing a stranger sends costs a guest
// anything: the per-address limit; the junk limit of the address; a place
// to read and decode the body (bounded, load shed beyond); the challenge,
// checked without storage; the evidence; only then the per-VM limit, for
// authentic evidence alone.
type Handler struct {
	svc          *Service
	source       *Limiter
	vm           *Limiter
	challenge    *Limiter
	challengeNet *Limiter
	junkLimit    *Limiter
	junk         *junkLog
	reading      chan struct{}
	waiting      atomic.Int64
	maxWaiting   int64
	peakReading  atomic.Int64
	peakWaiting  atomic.Int64
	log          *slog.Logger
}

// NewHandler returns the API handler over svc.
func NewHandler(svc *Service, o ServerOptions) *Handler {
	if o.SourceRate == 0 {
		o.SourceRate, o.SourceBurst = 20, 40
	}
	if o.VMRate == 0 {
		o.VMRate, o.VMBurst = 2, 10
	}
	if o.ChallengeRate == 0 {
		o.ChallengeRate, o.ChallengeBurst = 10, 40
	}
	if o.ChallengeNetRate == 0 {
		o.ChallengeNetRate, o.ChallengeNetBurst = 100, 1000
	}
	if o.JunkRate == 0 {
		o.JunkRate, o.JunkBurst = 1, 20
	}
	if o.Reading <= 0 {
		o.Reading = 32
	}
	if o.Waiting <= 0 {
		o.Waiting = 256
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Handler{svc: svc, log: o.Log,
		source:       NewLimiter(o.SourceRate, o.SourceBurst, o.Now),
		vm:           NewLimiter(o.VMRate, o.VMBurst, o.Now),
		challenge:    NewLimiter(o.ChallengeRate, o.ChallengeBurst, o.Now),
		challengeNet: NewLimiter(o.ChallengeNetRate, o.ChallengeNetBurst, o.Now),
		junkLimit:    NewLimiter(o.JunkRate, o.JunkBurst, o.Now),
		junk:         newJunkLog(now),
		reading:      make(chan struct{}, o.Reading),
		maxWaiting:   int64(o.Waiting),
	}
}

// NewServer wraps h in an http.Server with the release API's timeouts and
// TLS 1.3 configuration.
func NewServer(h http.Handler, id *TLSIdentity, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         id.ServerTLSConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// HandlerStats are structural counts of the handler's bounded queues.
type HandlerStats struct {
	// PeakReading is the most request bodies read or decoded at once.
	PeakReading int
	// PeakWaiting is the most requests that waited at once for a place to
	// read their body.
	PeakWaiting int
	// PeakVerifyQueue is the most requests that waited at once for a
	// processor to verify their evidence.
	PeakVerifyQueue int
	// JunkPending is the junk counted and not yet audited.
	JunkPending int
}

// Stats returns the handler's structural counts.
func (h *Handler) Stats() HandlerStats {
	return HandlerStats{PeakReading: int(h.peakReading.Load()), PeakWaiting: int(h.peakWaiting.Load()),
		PeakVerifyQueue: h.svc.cpu.peakWaiting(), JunkPending: h.junk.pending()}
}

func raisePeak(p *atomic.Int64, v int64) {
	for {
		old := p.Load()
		if v <= old || p.CompareAndSwap(old, v) {
			return
		}
	}
}

var errShed = refusal(wire.CodeUnavailable, "the console is busy; retry shortly")

// readBody decodes a request body with decode while holding one of the
// bounded reading places; errShed when too many wait for one.
func readBody[T any](h *Handler, w http.ResponseWriter, r *http.Request, decode func(io.Reader) (T, error)) (T, error) {
	var zero T
	if n := h.waiting.Add(1); n > h.maxWaiting {
		h.waiting.Add(-1)
		return zero, errShed
	} else {
		raisePeak(&h.peakWaiting, n)
	}
	select {
	case h.reading <- struct{}{}:
		h.waiting.Add(-1)
	case <-r.Context().Done():
		h.waiting.Add(-1)
		return zero, refusal(wire.CodeUnavailable, "the request was cancelled")
	}
	defer func() { <-h.reading }()
	raisePeak(&h.peakReading, int64(len(h.reading)))
	// A slow sender must not keep a place for the server's whole read
	// timeout.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(5 * time.Second))
	v, err := decode(http.MaxBytesReader(w, r.Body, wire.MaxBody))
	if err != nil {
		return zero, refusal(wire.RefusalCode(err), err.Error())
	}
	return v, nil
}

// refuseJunk answers a junk request and counts it against its source.
func (h *Handler) refuseJunk(w http.ResponseWriter, src source, err error) {
	var we *wire.Error
	code := wire.CodeInternal
	if errors.As(err, &we) {
		code = we.Code
	}
	h.junk.count(src, code)
	if code != wire.CodeUnavailable && code != wire.CodeRateLimited {
		h.junkLimit.Allow(src.addr)
	}
	writeRefusal(w, err)
}

// isJunk reports whether the engine refused a request before it showed a
// valid challenge (or, polling, a request ID the console knows).
func isJunk(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && (we.Code == wire.CodeNonceUnknown || we.Code == wire.CodeBadRequest || we.Code == wire.CodeRequestUnknown)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	src := sourceOf(r.RemoteAddr)
	if !h.source.Allow(src.addr) {
		h.refuseJunk(w, src, refusal(wire.CodeRateLimited, "too many requests from this address"))
		return
	}
	switch {
	case r.URL.Path == "/v1/challenge":
		if !method(w, r, http.MethodPost) {
			return
		}
		if !h.challenge.Allow(src.addr) || !h.challengeNet.Allow(src.net) {
			h.refuseJunk(w, src, refusal(wire.CodeRateLimited, "too many challenges for this address or network"))
			return
		}
		c, err := h.svc.Challenge()
		if err != nil {
			writeRefusal(w, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	case r.URL.Path == "/v1/release" || r.URL.Path == "/v1/heartbeat":
		if !method(w, r, http.MethodPost) {
			return
		}
		if !h.junkLimit.Peek(src.addr) {
			h.refuseJunk(w, src, refusal(wire.CodeRateLimited, "too many refused requests from this address"))
			return
		}
		req, err := readBody(h, w, r, wire.DecodeReleaseRequest)
		if err != nil {
			h.refuseJunk(w, src, err)
			return
		}
		gate := func(vmID string) *wire.Error {
			if !h.vm.Allow(vmID) {
				w.Header().Set("Retry-After", "5")
				return refusal(wire.CodeRateLimited, "too many requests for this VM")
			}
			return nil
		}
		if r.URL.Path == "/v1/heartbeat" {
			hb, err := h.svc.heartbeat(r.Context(), req, gate)
			if err != nil {
				h.refuse(w, src, err)
				return
			}
			writeJSON(w, http.StatusOK, hb)
			return
		}
		rel, err := h.svc.release(r.Context(), req, gate)
		if err != nil {
			h.refuse(w, src, err)
			return
		}
		w.Header().Set(LongPollHeader, strconv.Itoa(int(MaxPollWait/time.Second)))
		h.writeRelease(w, rel, nil)
	case strings.HasPrefix(r.URL.Path, "/v1/release/"):
		if !method(w, r, http.MethodGet) {
			return
		}
		// A poll reads no body and holds no reading place; asked to wait
		// (?wait=seconds), it is answered when its request changes
		// (PollWait: woken by the engine, their number bounded).
		wait := pollWait(r.URL.Query().Get("wait"))
		if wait > 0 {
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Now().Add(wait + 5*time.Second))
			rc.SetWriteDeadline(time.Now().Add(wait + 10*time.Second))
		}
		rel, waited, err := h.svc.PollWait(r.Context(), strings.TrimPrefix(r.URL.Path, "/v1/release/"), wait)
		if err != nil && isJunk(err) {
			h.refuseJunk(w, src, err)
			return
		}
		if waited || wait == 0 {
			w.Header().Set(LongPollHeader, strconv.Itoa(int(MaxPollWait/time.Second)))
		}
		h.writeRelease(w, rel, err)
	case r.URL.Path == "/v1/rotation/confirm":
		if !method(w, r, http.MethodPost) {
			return
		}
		if !h.junkLimit.Peek(src.addr) {
			h.refuseJunk(w, src, refusal(wire.CodeRateLimited, "too many refused requests from this address"))
			return
		}
		c, err := readBody(h, w, r, wire.DecodeRotationConfirm)
		if err != nil {
			h.refuseJunk(w, src, err)
			return
		}
		if err := h.svc.ConfirmRotation(r.Context(), c); err != nil {
			writeRefusal(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "confirmed"})
	default:
		writeRefusal(w, &wire.Error{Code: wire.CodeBadRequest, Message: "no such endpoint"})
	}
}

// refuse answers a refused release or heartbeat, counting it as junk when
// it came before a valid challenge.
func (h *Handler) refuse(w http.ResponseWriter, src source, err error) {
	if isJunk(err) {
		h.refuseJunk(w, src, err)
		return
	}
	writeRefusal(w, err)
}

func (h *Handler) writeRelease(w http.ResponseWriter, rel *wire.Release, err error) {
	if err != nil {
		writeRefusal(w, err)
		return
	}
	if rel.Status == wire.StatusPending {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusAccepted, rel)
		return
	}
	writeJSON(w, http.StatusOK, rel)
}

func method(w http.ResponseWriter, r *http.Request, m string) bool {
	if r.Method == m {
		return true
	}
	w.Header().Set("Allow", m)
	writeJSON(w, http.StatusMethodNotAllowed, wire.ErrorBody{Error: refusal(wire.CodeBadRequest, "use "+m)})
	return false
}

// StatusFor maps a reason code to its HTTP status.
func StatusFor(c wire.Code) int {
	switch c {
	case wire.CodeBadRequest, wire.CodeUnsupportedVersion:
		return http.StatusBadRequest
	case wire.CodeRateLimited:
		return http.StatusTooManyRequests
	case wire.CodeRequestUnknown:
		return http.StatusNotFound
	case wire.CodeUnavailable:
		return http.StatusServiceUnavailable
	case wire.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusForbidden
}

func writeRefusal(w http.ResponseWriter, err error) {
	var we *wire.Error
	if !errors.As(err, &we) {
		we = refusal(wire.CodeInternal, "the console could not decide; its log has the details")
	}
	if w.Header().Get("Retry-After") == "" {
		switch we.Code {
		case wire.CodeUnavailable, wire.CodeRateLimited:
			w.Header().Set("Retry-After", "1")
		}
	}
	writeJSON(w, StatusFor(we.Code), wire.ErrorBody{Error: we})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// RunExpiry expires overdue requests, and forgets used challenges that
// have expired, every interval until ctx ends (on one replica at a time,
// see SetJobLease).
func (s *Service) RunExpiry(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			lead := s.lead
			s.mu.Unlock()
			if lead != nil && !lead(ctx) {
				continue // another replica holds the lease
			}
			if _, err := s.ExpireDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("expire release requests", "err", err)
			}
			if _, err := SweepChallenges(ctx, s.db, s.now()); err != nil && ctx.Err() == nil {
				s.log.Warn("sweep used challenges", "err", err)
			}
		}
	}
}

// pollWait reads a poll's ?wait= (seconds): 0 when absent or bad, at most
// MaxPollWait.
func pollWait(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, MaxPollWait)
}
