package remote

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ErrNoSession means the console refused the event stream: the window's
// session is missing, locked or ended (the console is reachable).
var ErrNoSession = errors.New("the console refused the event stream without an open session")

// EventResync is emitted after a gap in the stream or a reconnect: every
// view reloads (the web transport synthesises the same).
const EventResync = "resync"

// EventConnectionChanged is what the desktop raises when its connection to
// the console goes down or comes back.
const EventConnectionChanged = "connection:changed"

// streamIdle ends a stream that has been silent this long: the console
// sends a keep-alive every 15 s, so a silent stream is a dead connection.
const streamIdle = 45 * time.Second

// maxEventLine bounds one line of the event stream.
const maxEventLine = 4 << 20

// Stream follows the console's event stream for the session token until it
// ends, calling opened once the console accepted it and emit for every
// event. It returns ErrNoSession (wrapped) when the console refused the
// stream, and why the stream ended otherwise.
func (c *Client) Stream(ctx context.Context, token string, opened func(), emit func(name string, data json.RawMessage)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	c.authorize(req, token)
	// A watchdog ends a stream that stays silent (the console went away
	// without closing the connection).
	alive := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(streamIdle)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-alive:
				t.Reset(streamIdle) // Go 1.23 timers: no stale tick to drain
			case <-t.C:
				cancel()
				return
			}
		}
	}()
	res, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("event stream: %w", ErrNoSession)
	default:
		return &CallError{Code: "unavailable", Message: fmt.Sprintf("the console at %s answered %d to the event stream", c.base, res.StatusCode)}
	}
	if opened != nil {
		opened()
	}
	err = readEvents(res.Body, func() {
		select {
		case alive <- struct{}{}:
		default:
		}
	}, emit)
	if err == nil {
		err = io.EOF
	}
	if ctx.Err() != nil && err != nil {
		return &CallError{Code: "unavailable", Message: fmt.Sprintf("the event stream from %s went silent", c.base), cause: err}
	}
	return c.transportError(err)
}

// localEvents are the names the desktop itself raises about the connection:
// a console's stream cannot raise them (it cannot, say, paint the "back
// again" banner over a connection that is down).
var localEvents = map[string]bool{EventResync: true, EventConnectionChanged: true}

// readEvents parses a server-sent event stream from r: "data:" lines up to
// an empty line make one JSON message {seq, name, data}. alive is called for
// every line; emit for every well-formed message, after an EventResync when
// its seq does not follow the previous one (the console dropped events for
// this stream). Malformed messages and the desktop's own event names are
// skipped. It returns why reading stopped (nil at the end of r).
func readEvents(r io.Reader, alive func(), emit func(name string, data json.RawMessage)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	var lastSeq uint64
	var data strings.Builder
	for sc.Scan() {
		alive()
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			if data.Len()+len(line) > maxEventLine {
				return fmt.Errorf("event stream: an event longer than %d bytes", maxEventLine)
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case line == "" && data.Len() > 0:
			var msg struct {
				Seq  uint64          `json:"seq"`
				Name string          `json:"name"`
				Data json.RawMessage `json:"data"`
			}
			if json.Unmarshal([]byte(data.String()), &msg) == nil && msg.Name != "" && !localEvents[msg.Name] {
				// A gap means the console dropped events for us.
				if lastSeq != 0 && msg.Seq != lastSeq+1 {
					emit(EventResync, nil)
				}
				lastSeq = msg.Seq
				emit(msg.Name, msg.Data)
			}
			data.Reset()
		}
	}
	return sc.Err()
}

// Backoff is the wait before the next attempt to reach the console: it
// starts at Base, doubles per failed attempt up to Max, and each wait is
// drawn uniformly between half the step and the step (jitter), so desktops
// that lost the same console do not come back in lock-step.
type Backoff struct {
	Base time.Duration // default 500ms
	Max  time.Duration // default 30s
	// Jitter returns a duration in [0, d]; nil means uniformly random.
	Jitter func(d time.Duration) time.Duration
}

// Default back-off steps.
const (
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
)

// Delay is the wait after the given number of failed attempts (0: the first).
func (b Backoff) Delay(attempt int) time.Duration {
	base, top := b.Base, b.Max
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if top <= 0 {
		top = DefaultBackoffMax
	}
	step := base
	for i := 0; i < attempt && step < top; i++ {
		step *= 2
	}
	step = min(step, top)
	half := step / 2
	j := b.Jitter
	if j == nil {
		j = func(d time.Duration) time.Duration { return rand.N(d + 1) }
	}
	return half + min(max(j(step-half), 0), step-half)
}

// State is the connection as the desktop window shows it.
type State struct {
	// URL is the console's address.
	URL string `json:"url"`
	// Connected is false while the console cannot be reached.
	Connected bool `json:"connected"`
	// Error says why it cannot be reached ("" when connected).
	Error string `json:"error,omitempty"`
	// Attempt counts the failed attempts since the connection was lost.
	Attempt int `json:"attempt,omitempty"`
	// RetryInMS is the wait before the next attempt, in milliseconds.
	RetryInMS int64 `json:"retry_in_ms,omitempty"`
	// Streaming is true while live events arrive (a session is open).
	Streaming bool `json:"streaming"`
}

// Watcher keeps the connection to the console: it follows the event stream
// of the window's session (SetToken) and reconnects by itself with Backoff
// when it breaks, and without a session it checks now and then that the
// console answers. It reports every change of State.
type Watcher struct {
	c       *Client
	emit    func(name string, data json.RawMessage)
	onState func(State)

	// Backoff paces the attempts after a failure.
	Backoff Backoff
	// ProbeEvery is how often a console is asked whether it answers while
	// no stream runs (no session, or a locked one); default 15s.
	ProbeEvery time.Duration
	// Sleep waits d, or until ctx ends or wake fires (nil: a timer).
	// Tests inject it.
	Sleep func(ctx context.Context, d time.Duration, wake <-chan struct{}) error

	mu    sync.Mutex
	token string
	state State
	wake  chan struct{}
}

// NewWatcher watches c, passing its events to emit and its connection
// changes to onState.
func NewWatcher(c *Client, emit func(name string, data json.RawMessage), onState func(State)) *Watcher {
	return &Watcher{c: c, emit: emit, onState: onState, wake: make(chan struct{}, 1), state: State{URL: c.URL(), Connected: true}}
}

// SetToken sets the session whose events to follow ("" for none) and wakes
// the watcher. The token stays in memory only.
func (w *Watcher) SetToken(token string) {
	w.mu.Lock()
	w.token = token
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// State returns the connection's current state.
func (w *Watcher) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

func (w *Watcher) set(s State) {
	s.URL = w.c.URL()
	w.mu.Lock()
	changed := s != w.state
	w.state = s
	w.mu.Unlock()
	if changed && w.onState != nil {
		w.onState(s)
	}
}

func (w *Watcher) sleep(ctx context.Context, d time.Duration) error {
	if w.Sleep != nil {
		return w.Sleep(ctx, d, w.wake)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.wake:
		return nil
	case <-t.C:
		return nil
	}
}

// Run keeps the connection until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	probe := w.ProbeEvery
	if probe <= 0 {
		probe = 15 * time.Second
	}
	failures := 0
	for ctx.Err() == nil {
		w.mu.Lock()
		token := w.token
		w.mu.Unlock()
		var err error
		streamed := false
		if token != "" {
			err = w.c.Stream(ctx, token, func() {
				streamed = true
				failures = 0
				w.set(State{Connected: true, Streaming: true})
				// Whatever happened while the stream was down: reload.
				w.emit(EventResync, nil)
			}, w.emit)
		} else {
			_, err = w.c.Call(ctx, "", "Session", "State", nil)
		}
		if ctx.Err() != nil {
			return
		}
		switch {
		case token == "" && err == nil, errors.Is(err, ErrNoSession):
			// The console answers; no stream to follow until a session opens.
			failures = 0
			w.set(State{Connected: true})
			if w.sleep(ctx, probe) != nil {
				return
			}
		case streamed:
			// A stream that ran and ended: try again after the first step
			// (never in a tight loop); the console may have ended it (the
			// session locked) or gone away, which the next attempt tells.
			w.set(State{Connected: true})
			if w.sleep(ctx, w.Backoff.Delay(0)) != nil {
				return
			}
		default:
			d := w.Backoff.Delay(failures)
			failures++
			w.set(State{Connected: false, Error: errorText(err), Attempt: failures, RetryInMS: d.Milliseconds()})
			if w.sleep(ctx, d) != nil {
				return
			}
		}
	}
}

func errorText(err error) string {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Message
	}
	return err.Error()
}
