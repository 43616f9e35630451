package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"
)

// MaxRequestBody bounds a JSON call's body.
const MaxRequestBody = 1 << 20

// HandlerOptions configures the HTTP face of the services.
type HandlerOptions struct {
	// Assets is the built frontend; nil serves the API only.
	Assets fs.FS
	// Hub streams events to browsers at /api/events; nil disables the stream.
	Hub *Hub
	// AllowedHosts are the Host header values accepted (besides loopback
	// names for a loopback listener). It protects against DNS rebinding.
	AllowedHosts []string
	// AnyHost skips the Host check; only for the desktop window's own
	// asset server, which no network peer can reach.
	AnyHost bool
	Log     *slog.Logger
}

// Handler serves the services' methods as JSON:
//
//	POST /api/call/{Service}/{Method}   body: JSON array of arguments
//	  200 {"result": ...}   or   4xx/5xx {"error": {"code": ..., "message": ...}}
//	GET  /api/events                    server-sent events: {"seq","name","data"}
//	GET  /*                             the frontend, index.html for unknown paths
//
// State-changing calls must carry the header "X-Keyholder-Client: 1" and a
// same-origin Origin (if any): a cross-site page cannot add that header
// without a CORS preflight, which this handler never grants.
type Handler struct {
	methods map[string]*method
	opts    HandlerOptions
	files   http.Handler
	session *Session // resolves each call's Caller
	streams streamSlots
}

type method struct {
	name string
	recv reflect.Value
	fn   reflect.Value
	in   []reflect.Type
	outs int
	// caller is true when the method's first parameter is a Caller, which
	// the handler fills in from the call's credential.
	caller bool
}

var (
	errorType  = reflect.TypeOf((*error)(nil)).Elem()
	callerType = reflect.TypeOf(Caller{})
)

// NewHandler indexes the exported methods of every service in s.
func NewHandler(s *Services, opts HandlerOptions) (*Handler, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	h := &Handler{methods: map[string]*method{}, opts: opts, session: s.Session}
	for _, svc := range s.List() {
		v := reflect.ValueOf(svc)
		name := v.Elem().Type().Name()
		t := v.Type()
		for i := 0; i < t.NumMethod(); i++ {
			m := t.Method(i)
			ft := m.Func.Type()
			outs := ft.NumOut()
			if outs == 0 || outs > 2 || !ft.Out(outs-1).Implements(errorType) {
				return nil, fmt.Errorf("service method %s.%s must return (T, error) or error", name, m.Name)
			}
			var in []reflect.Type
			withCaller := ft.NumIn() > 1 && ft.In(1) == callerType
			for j := 1; j < ft.NumIn(); j++ {
				if withCaller && j == 1 {
					continue
				}
				if ft.In(j) == callerType || ft.In(j) == reflect.PointerTo(callerType) {
					return nil, fmt.Errorf("service method %s.%s: a Caller must be the first parameter, by value", name, m.Name)
				}
				in = append(in, ft.In(j))
			}
			h.methods[name+"/"+m.Name] = &method{name: name + "." + m.Name, recv: v, fn: m.Func, in: in, outs: outs, caller: withCaller}
		}
	}
	if opts.Assets != nil {
		h.files = http.FileServerFS(opts.Assets)
	}
	return h, nil
}

// Methods lists "Service.Method" for every served method.
func (h *Handler) Methods() []string {
	var out []string
	for _, m := range h.methods {
		out = append(out, m.name)
	}
	return out
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if !h.hostAllowed(r.Host) {
		writeError(w, http.StatusMisdirectedRequest, &Error{Code: CodeForbidden, Message: "unexpected Host header"})
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/call/"):
		h.serveCall(w, r)
	case r.URL.Path == "/api/events":
		h.serveEvents(w, r)
	case strings.HasPrefix(r.URL.Path, "/api/"):
		writeError(w, http.StatusNotFound, &Error{Code: CodeNotFound, Message: "no such API endpoint"})
	default:
		h.serveAsset(w, r)
	}
}

func (h *Handler) hostAllowed(host string) bool {
	if h.opts.AnyHost {
		return true
	}
	for _, a := range h.opts.AllowedHosts {
		if strings.EqualFold(host, a) {
			return true
		}
	}
	name := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		name = hh
	}
	if name == "localhost" || name == "wails.localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(name, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (h *Handler) serveCall(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, &Error{Code: CodeInvalid, Message: "calls use POST"})
		return
	}
	if r.Header.Get("X-Keyholder-Client") != "1" {
		writeError(w, http.StatusForbidden, &Error{Code: CodeForbidden, Message: "missing X-Keyholder-Client header (cross-site requests are refused)"})
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
		writeError(w, http.StatusForbidden, &Error{Code: CodeForbidden, Message: "cross-origin request refused"})
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/api/call/")
	out := &callOut{}
	result, e := h.dispatch(h.credential(r), key, out, func() ([]byte, *Error) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
		if err != nil {
			return nil, errBodyTooLarge
		}
		return body, nil
	})
	if e != nil {
		status := statusFor(e.Code)
		if e == errBodyTooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, e)
		return
	}
	if h.web() {
		setCookie(w, r, out)
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

var errBodyTooLarge = &Error{Code: CodeInvalid, Message: "request body too large or unreadable"}

// web says whether this is the web console's handler: the session is in
// a cookie there, in the X-Keyholder-Session header in the desktop window.
func (h *Handler) web() bool { return h.session.cfg.Mode == "web" }

// credential reads a request's session credential: the cookie in the web
// console, the X-Keyholder-Session header in the desktop window (whose
// webview may not keep cookies for its own scheme).
func (h *Handler) credential(r *http.Request) credential {
	cr := credential{source: remoteHost(r.RemoteAddr), userAgent: r.UserAgent(), device: "web", ctx: r.Context()}
	if h.web() {
		if c, err := r.Cookie(sessionCookie); err == nil {
			cr.token = c.Value
		}
	} else {
		cr.token, cr.device, cr.source = r.Header.Get(sessionHeader), "desktop", "desktop"
	}
	if len(cr.userAgent) > 256 {
		cr.userAgent = cr.userAgent[:256]
	}
	return cr
}

func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// dispatch runs one call: it resolves the caller from the credential
// before the arguments are read, reads them (readBody), resolves the
// caller again (the session must still be the same and alive), and calls
// the method with that caller. The HTTP API and the desktop bridge both
// call it.
func (h *Handler) dispatch(cr credential, key string, out *callOut, readBody func() ([]byte, *Error)) (any, *Error) {
	m := h.methods[key]
	if m == nil {
		return nil, &Error{Code: CodeNotFound, Message: "no such method"}
	}
	before, e := h.session.authorize(cr, key)
	if e != nil {
		return nil, e
	}
	body, e := readBody()
	if e != nil {
		return nil, e
	}
	args, err := m.decodeArgs(body)
	if err != nil {
		return nil, &Error{Code: CodeInvalid, Message: err.Error()}
	}
	// The session may have ended, locked or changed while the body arrived.
	c, e := h.session.authorize(cr, key)
	if e != nil {
		return nil, e
	}
	if c.SessionID != before.SessionID {
		return nil, &Error{Code: CodeUnauthorized, Message: "the session changed during the call; try again"}
	}
	in := []reflect.Value{m.recv}
	if m.caller {
		c.out = out
		in = append(in, reflect.ValueOf(c))
	}
	res := m.fn.Call(append(in, args...))
	if errv := res[len(res)-1]; !errv.IsNil() {
		err := errv.Interface().(error)
		var ae *Error
		if !errors.As(err, &ae) {
			ae = toError(h.opts.Log, m.name, err).(*Error)
		}
		return nil, ae
	}
	if m.outs == 2 {
		return res[0].Interface(), nil
	}
	return nil, nil
}

// decodeArgs reads a JSON array into the method's parameter types. Missing
// trailing arguments take their zero value; extra ones and unknown object
// fields are refused.
func (m *method) decodeArgs(body []byte) ([]reflect.Value, error) {
	var raw []json.RawMessage
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("arguments must be a JSON array: %v", err)
		}
	}
	if len(raw) > len(m.in) {
		return nil, fmt.Errorf("%s takes %d arguments, got %d", m.name, len(m.in), len(raw))
	}
	args := make([]reflect.Value, len(m.in))
	for i, t := range m.in {
		p := reflect.New(t)
		if i < len(raw) {
			dec := json.NewDecoder(bytes.NewReader(raw[i]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(p.Interface()); err != nil {
				return nil, fmt.Errorf("argument %d of %s: %v", i+1, m.name, err)
			}
		}
		args[i] = p.Elem()
	}
	return args, nil
}

// Event stream limits: each session (or, before the console has officers,
// each source address) may hold a few streams; a write that cannot go out
// within streamWriteTimeout ends the stream.
const (
	maxStreamsPerSession = 6
	streamKeepAlive      = 15 * time.Second
	streamWriteTimeout   = 20 * time.Second
)

func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	if h.opts.Hub == nil {
		writeError(w, http.StatusNotFound, &Error{Code: CodeNotFound, Message: "no event stream"})
		return
	}
	cr := h.credential(r)
	c, e := h.session.authorize(cr, "")
	if e != nil {
		writeError(w, statusFor(e.Code), e)
		return
	}
	slot := c.SessionID
	if slot == "" {
		slot = "source:" + cr.source
	}
	if !h.streams.acquire(slot) {
		writeError(w, http.StatusTooManyRequests, &Error{Code: CodeUnavailable, Message: "too many event streams for this session"})
		return
	}
	defer h.streams.release(slot)
	rc := http.NewResponseController(w)
	events, stop := h.opts.Hub.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	// write extends the deadline the server's WriteTimeout set, one write
	// at a time, and flushes.
	write := func(s string) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	if !write(": keyholder events\n\n") {
		return
	}
	keepalive := time.NewTicker(streamKeepAlive)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg := <-events:
			// A stream lives only as long as its session.
			if c.SessionID != "" && !h.session.alive(c.SessionID) {
				return
			}
			if !write("data: " + string(msg) + "\n\n") {
				return
			}
		case <-keepalive.C:
			if now, e := h.session.authorize(cr, ""); e != nil || now.SessionID != c.SessionID {
				return
			}
			if !write(": keepalive\n\n") {
				return
			}
		}
	}
}

// streamSlots counts open event streams per session.
type streamSlots struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *streamSlots) acquire(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	if s.n[k] >= maxStreamsPerSession {
		return false
	}
	s.n[k]++
	return true
}

func (s *streamSlots) release(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[k]--; s.n[k] <= 0 {
		delete(s.n, k)
	}
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	if h.files == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p != "" {
		if _, err := fs.Stat(h.opts.Assets, p); err != nil {
			// Client-side routes (/fleet, /approvals, ...) get the app shell.
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/"
			h.files.ServeHTTP(w, r2)
			return
		}
	}
	h.files.ServeHTTP(w, r)
}

func sameOrigin(origin, host string) bool {
	for _, scheme := range []string{"http://", "https://"} {
		if strings.EqualFold(origin, scheme+host) {
			return true
		}
	}
	return false
}

func statusFor(c Code) int {
	switch c {
	case CodeInvalid, CodeUnsupportedFormat, CodeConfirmRaw:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeUnauthorized, CodeReauth:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeCanceled:
		return 499
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, e *Error) {
	writeJSON(w, status, map[string]any{"error": e})
}

// Console server limits. The event stream extends its own write deadline
// per write (serveEvents).
const (
	serverReadHeaderTimeout = 10 * time.Second
	serverReadTimeout       = 30 * time.Second
	serverWriteTimeout      = 60 * time.Second
	serverIdleTimeout       = 2 * time.Minute
	serverMaxHeaderBytes    = 16 << 10
)

// NewServer wraps the console's handler in an http.Server with its
// timeouts and header limit: a client that sends its headers or body
// slowly, or reads slowly, is cut off.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: serverReadHeaderTimeout,
		ReadTimeout:       serverReadTimeout,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       serverIdleTimeout,
		MaxHeaderBytes:    serverMaxHeaderBytes,
	}
}
