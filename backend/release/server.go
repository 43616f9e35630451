package release

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"keyholder/backend/release/wire"
)

// ServerOptions configures the release API's HTTP face.
type ServerOptions struct {
	// PerSource limits requests per client address: Rate per second with
	// bursts of Burst. Zero values mean 20/s, burst 40.
	SourceRate  float64
	SourceBurst int
	// PerVM limits release and heartbeat requests per VM ID; zero values mean
	// 2/s, burst 10.
	VMRate  float64
	VMBurst int
	Log     *slog.Logger
	Now     func() time.Time
}

// Handler serves the release API (see package wire for the messages). It is
// its own listener's handler and never shares a port with the officer UI.
type Handler struct {
	svc    *Service
	source *Limiter
	vm     *Limiter
	log    *slog.Logger
}

// NewHandler returns the API handler over svc.
func NewHandler(svc *Service, o ServerOptions) *Handler {
	if o.SourceRate == 0 {
		o.SourceRate, o.SourceBurst = 20, 40
	}
	if o.VMRate == 0 {
		o.VMRate, o.VMBurst = 2, 10
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Handler{svc: svc, source: NewLimiter(o.SourceRate, o.SourceBurst, o.Now), vm: NewLimiter(o.VMRate, o.VMBurst, o.Now), log: o.Log}
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

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	src := r.RemoteAddr
	if host, _, err := net.SplitHostPort(src); err == nil {
		src = host
	}
	if !h.source.Allow(src) {
		w.Header().Set("Retry-After", "1")
		writeRefusal(w, refusal(wire.CodeRateLimited, "too many requests from this address"))
		return
	}
	switch {
	case r.URL.Path == "/v1/challenge":
		if !method(w, r, http.MethodPost) {
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
		req, err := wire.DecodeReleaseRequest(http.MaxBytesReader(w, r.Body, wire.MaxBody))
		if err != nil {
			writeRefusal(w, refusal(wire.CodeBadRequest, err.Error()))
			return
		}
		if !h.vm.Allow(req.VMID) {
			w.Header().Set("Retry-After", "5")
			writeRefusal(w, refusal(wire.CodeRateLimited, "too many requests for this VM"))
			return
		}
		if r.URL.Path == "/v1/heartbeat" {
			hb, err := h.svc.Heartbeat(r.Context(), req)
			if err != nil {
				writeRefusal(w, err)
				return
			}
			writeJSON(w, http.StatusOK, hb)
			return
		}
		rel, err := h.svc.Release(r.Context(), req)
		h.writeRelease(w, rel, err)
	case strings.HasPrefix(r.URL.Path, "/v1/release/"):
		if !method(w, r, http.MethodGet) {
			return
		}
		rel, err := h.svc.Poll(r.Context(), strings.TrimPrefix(r.URL.Path, "/v1/release/"))
		h.writeRelease(w, rel, err)
	case r.URL.Path == "/v1/rotation/confirm":
		if !method(w, r, http.MethodPost) {
			return
		}
		c, err := wire.DecodeRotationConfirm(http.MaxBytesReader(w, r.Body, wire.MaxBody))
		if err != nil {
			writeRefusal(w, refusal(wire.CodeBadRequest, err.Error()))
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
	case wire.CodeBadRequest:
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
	writeJSON(w, StatusFor(we.Code), wire.ErrorBody{Error: we})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// RunExpiry expires overdue requests every interval until ctx ends.
func (s *Service) RunExpiry(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.ExpireDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("expire release requests", "err", err)
			}
		}
	}
}
