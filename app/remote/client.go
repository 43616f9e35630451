// Package remote is the desktop app's side of a shared console (`keyholder
// serve`): it calls the console's HTTP API (POST /api/call/{Service}/{Method})
// and follows its event stream (GET /api/events) over TLS that trusts only
// the pinned key (or a CA file the officer gave), never the system's CAs
// and never plain HTTP. The desktop window cannot pin a certificate itself,
// so every byte to the console goes through this package in Go.
//
// There is no process-wide session here: every call carries the session
// token of the window that makes it (the console's session cookie, which
// this package hands to the window after Login and takes back with each
// call), and nothing is written to disk.
package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"keyholder/backend/release/wire"
)

// SessionCookie is the web console's session cookie (app.sessionCookie).
const SessionCookie = "keyholder_session"

// MaxResponse bounds one call's answer (an encrypted backup is the largest).
const MaxResponse = 256 << 20

// Errors callers branch on.
var (
	// ErrNotTLS means the console URL is not https: an officer's passphrase
	// never goes over plain HTTP.
	ErrNotTLS = errors.New("the console URL must start with https:// (officer login goes only over TLS)")
	// ErrNoTrust means neither a pin nor a CA file was given: the console's
	// certificate must be pinned.
	ErrNoTrust = errors.New("the console's certificate must be pinned: give its SPKI pin (as 'keyholder serve' prints it) or a CA file")
	// ErrPinMismatch means the console presented a key other than the pinned one.
	ErrPinMismatch = errors.New("the console's certificate does not match the pinned key; refused (a different server, or the console's certificate changed)")
)

// Options say which console to reach and how to trust it.
type Options struct {
	// URL is the console's address, https://host[:port] (a trailing "/" is
	// fine; no path, query or user name).
	URL string
	// Pin is the SHA-256 of the console certificate's SubjectPublicKeyInfo,
	// 64 hex digits or base64 (the format `keyholder serve` prints and
	// agents use). Exactly one of Pin and CAFile is set.
	Pin string
	// CAFile is a PEM file of CA certificates that sign the console's
	// certificate; the certificate must also name the URL's host.
	CAFile string
	// UserAgent names this client to the console (its session list shows it).
	UserAgent string
	// AnswerTimeout bounds how long a call waits for the console to start
	// its answer (0: DefaultAnswerTimeout). The event stream is not bound
	// by it: the console answers it at once and then keeps it open.
	AnswerTimeout time.Duration
}

// DefaultAnswerTimeout is how long a call waits for the console's answer to
// begin. Every call the window makes is short (long work runs as an
// operation the window polls); the slowest, a login's key derivation or a
// backup's export, take seconds.
const DefaultAnswerTimeout = 2 * time.Minute

// Client calls one console. It is safe for concurrent use.
type Client struct {
	base string // scheme://host[:port], no trailing slash
	hc   *http.Client
	ua   string
	// answer is the transport's ResponseHeaderTimeout, for the message.
	answer time.Duration
}

// New checks o and makes a client; it does not connect.
func New(o Options) (*Client, error) {
	base, host, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	cfg, err := trust(o, host)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		// No proxy from the environment: the pin is checked on the
		// console's own TLS connection, and nothing else is trusted.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       cfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "Keyholder desktop"
	}
	answer := o.AnswerTimeout
	if answer <= 0 {
		answer = DefaultAnswerTimeout
	}
	// A console that takes a call and never answers would hold the window's
	// call (and its spinner) forever.
	tr.ResponseHeaderTimeout = answer
	return &Client{base: base, ua: ua, answer: answer, hc: &http.Client{
		Transport: tr,
		// A redirect could lead the session cookie elsewhere: refuse it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// URL is the console's address as the client uses it.
func (c *Client) URL() string { return c.base }

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func parseURL(raw string) (base, host string, err error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		if err == nil && strings.EqualFold(u.Scheme, "http") {
			return "", "", ErrNotTLS
		}
		return "", "", fmt.Errorf("console URL %q: give it as https://host:port", raw)
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return "", "", ErrNotTLS
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", "", fmt.Errorf("console URL %q: give only https://host:port (no path, query or user name)", raw)
	}
	return "https://" + u.Host, u.Hostname(), nil
}

// checkTrust checks that exactly one of pin and CA file is given, and the
// pin's form.
func checkTrust(pin, ca string) error {
	pin, ca = strings.TrimSpace(pin), strings.TrimSpace(ca)
	switch {
	case pin == "" && ca == "":
		return ErrNoTrust
	case pin != "" && ca != "":
		return errors.New("give either the console's pin or a CA file, not both")
	case pin != "":
		if _, err := wire.ParsePin(pin); err != nil {
			return fmt.Errorf("console pin: %w", err)
		}
	}
	return nil
}

func trust(o Options, host string) (*tls.Config, error) {
	if err := checkTrust(o.Pin, o.CAFile); err != nil {
		return nil, err
	}
	pin, ca := strings.TrimSpace(o.Pin), strings.TrimSpace(o.CAFile)
	if pin != "" {
		cfg, err := wire.PinnedTLSConfig(pin)
		if err != nil {
			return nil, fmt.Errorf("console pin: %w", err)
		}
		return cfg, nil
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("read the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", ca)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: host}, nil
}

// CallError is an error the console answered, or a transport failure mapped
// to the console's codes ("unavailable" when it cannot be reached). Its text
// is "code: message", which the desktop window parses back.
type CallError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	cause   error
}

// Error formats the error as "code: message".
func (e *CallError) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the transport failure behind the error (ErrPinMismatch,
// a network error), nil for an answer of the console.
func (e *CallError) Unwrap() error { return e.cause }

var name = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,63}$`)

// Call runs service/method on the console with args (a JSON array) for the
// session token ("" for none) and returns the result's JSON. After a
// Session.Login or Session.Setup that started a session, the new token is
// put into the result as "token" (as the local desktop console does), for
// the window to keep in memory and send with its next calls.
func (c *Client) Call(ctx context.Context, token, service, method string, args json.RawMessage) (json.RawMessage, error) {
	if !name.MatchString(service) || !name.MatchString(method) {
		return nil, &CallError{Code: "invalid", Message: "no such method"}
	}
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("[]")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/call/"+service+"/"+method, bytes.NewReader(args))
	if err != nil {
		return nil, &CallError{Code: "internal", Message: "make the request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Keyholder-Client", "1")
	c.authorize(req, token)
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		// A timeout as long as the answer's bound is that bound (the dial
		// and handshake time out sooner, with their own words).
		if ne, ok := unwrapURL(err).(net.Error); ok && ne.Timeout() && time.Since(start) >= c.answer {
			return nil, &CallError{Code: "unavailable", Message: fmt.Sprintf("the console at %s did not answer within %s", c.base, c.answer), cause: err}
		}
		return nil, c.transportError(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxResponse+1))
	if err != nil {
		return nil, c.transportError(err)
	}
	if len(body) > MaxResponse {
		return nil, &CallError{Code: "internal", Message: "the console's answer is too large"}
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *CallError      `json:"error"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, &CallError{Code: "unavailable", Message: fmt.Sprintf("the console at %s answered %d, not a Keyholder answer", c.base, res.StatusCode)}
	}
	if out.Error != nil {
		return nil, out.Error
	}
	if res.StatusCode != http.StatusOK {
		return nil, &CallError{Code: "internal", Message: fmt.Sprintf("the console answered %d", res.StatusCode)}
	}
	if service == "Session" && (method == "Login" || method == "Setup") {
		return withToken(out.Result, res)
	}
	if len(out.Result) == 0 {
		return json.RawMessage("null"), nil
	}
	return out.Result, nil
}

// authorize adds the window's session cookie and the client's name.
func (c *Client) authorize(req *http.Request, token string) {
	req.Header.Set("User-Agent", c.ua)
	if token != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token})
	}
}

// withToken copies the session cookie the console set into the result.
func withToken(result json.RawMessage, res *http.Response) (json.RawMessage, error) {
	var token string
	for _, ck := range res.Cookies() {
		if ck.Name == SessionCookie && ck.MaxAge >= 0 && ck.Value != "" {
			token = ck.Value
		}
	}
	if token == "" {
		return result, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(result, &m); err != nil || m == nil {
		return nil, &CallError{Code: "internal", Message: "the console's login answer is not a session state"}
	}
	t, _ := json.Marshal(token)
	m["token"] = t
	b, err := json.Marshal(m)
	if err != nil {
		return nil, &CallError{Code: "internal", Message: "encode the session state: " + err.Error()}
	}
	return b, nil
}

// transportError says in words why the console could not be reached.
func (c *Client) transportError(err error) error {
	if errors.Is(err, context.Canceled) {
		return &CallError{Code: "canceled", Message: "the call was cancelled", cause: err}
	}
	if errors.Is(err, wire.ErrPinMismatch) {
		return &CallError{Code: "unavailable", Message: fmt.Sprintf("%s: %v", c.base, ErrPinMismatch), cause: ErrPinMismatch}
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return &CallError{Code: "unavailable", Message: fmt.Sprintf("%s: the console's certificate is not signed by the given CA or does not name this host; refused", c.base), cause: err}
	}
	return &CallError{Code: "unavailable", Message: fmt.Sprintf("the console at %s is not reachable: %v", c.base, unwrapURL(err)), cause: err}
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
