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
	session *Session // officer login gate (web console)
}

type method struct {
	name string
	recv reflect.Value
	fn   reflect.Value
	in   []reflect.Type
	outs int
}

var errorType = reflect.TypeOf((*error)(nil)).Elem()

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
			for j := 1; j < ft.NumIn(); j++ {
				in = append(in, ft.In(j))
			}
			h.methods[name+"/"+m.Name] = &method{name: name + "." + m.Name, recv: v, fn: m.Func, in: in, outs: outs}
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
	m := h.methods[key]
	if m == nil {
		writeError(w, http.StatusNotFound, &Error{Code: CodeNotFound, Message: "no such method"})
		return
	}
	if h.session != nil {
		if e := h.session.gate(r, key); e != nil {
			writeError(w, statusFor(e.Code), e)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, &Error{Code: CodeInvalid, Message: "request body too large or unreadable"})
		return
	}
	args, err := m.decodeArgs(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, &Error{Code: CodeInvalid, Message: err.Error()})
		return
	}
	out := m.fn.Call(append([]reflect.Value{m.recv}, args...))
	if errv := out[len(out)-1]; !errv.IsNil() {
		err := errv.Interface().(error)
		var ae *Error
		if !errors.As(err, &ae) {
			ae = toError(h.opts.Log, m.name, err).(*Error)
		}
		writeError(w, statusFor(ae.Code), ae)
		return
	}
	var result any
	if m.outs == 2 {
		result = out[0].Interface()
	}
	if h.session != nil {
		h.session.afterCall(w, r, key)
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
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

func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	if h.opts.Hub == nil {
		writeError(w, http.StatusNotFound, &Error{Code: CodeNotFound, Message: "no event stream"})
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, &Error{Code: CodeInternal, Message: "streaming unsupported"})
		return
	}
	if h.session != nil {
		if e := h.session.gate(r, ""); e != nil {
			writeError(w, statusFor(e.Code), e)
			return
		}
	}
	events, stop := h.opts.Hub.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": keyholder events\n\n")
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg := <-events:
			fmt.Fprintf(w, "data: %s\n\n", msg)
			fl.Flush()
		case <-keepalive.C:
			io.WriteString(w, ": keepalive\n\n")
			fl.Flush()
		}
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
	case CodeInvalid:
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
