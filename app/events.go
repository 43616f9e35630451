package app

import (
	"encoding/json"
	"sync"
)

// Event names pushed to the frontend.
const (
	EventFleetChanged     = "fleet:changed"     // data: fleet.Guest (or nil for "reload")
	EventApprovalsChanged = "approvals:changed" // data: release.Request
	EventAuditAppended    = "audit:appended"    // data: {"seq": newest entry} or nil
	EventProgress         = "progress"          // data: Progress
	// EventsLost follows a skipped sequence number: events may have been
	// lost (see Hub.Lost), and clients reload their views on the gap.
	EventsLost = "events:lost" // data: nil
)

// Events pushes named events to whatever frontend is attached. The desktop
// implementation uses the Wails runtime; the web one is Hub (server-sent
// events). Emit never blocks on a slow client.
type Events interface {
	Emit(name string, data any)
}

// Progress reports a long operation; ID names the operation.
type Progress struct {
	ID       string  `json:"id"`
	Stage    string  `json:"stage"`
	Done     int64   `json:"done"`
	Total    int64   `json:"total"`
	Rate     float64 `json:"rate"` // units per second
	Finished bool    `json:"finished"`
	Error    *Error  `json:"error,omitempty"`
}

// Hub fans events out to server-sent-event subscribers. It drops events for a
// subscriber whose buffer is full rather than stall the console; the
// frontend reloads the affected view when it sees a gap in Seq.
type Hub struct {
	mu   sync.Mutex
	seq  uint64
	subs map[chan []byte]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[chan []byte]struct{}{}} }

// Emit implements Events.
func (h *Hub) Emit(name string, data any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	msg, err := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Name string `json:"name"`
		Data any    `json:"data"`
	}{h.seq, name, data})
	if err != nil {
		return
	}
	for c := range h.subs {
		select {
		case c <- msg:
		default:
		}
	}
}

// Lost tells every subscriber that events may have been lost before they
// reached this console (a replica's listener reconnected): the sequence
// skips a number and an EventsLost follows, so each client sees a gap and
// reloads its views, as after a drop for a slow subscriber.
func (h *Hub) Lost() {
	h.mu.Lock()
	h.seq++
	h.mu.Unlock()
	h.Emit(EventsLost, nil)
}

// Subscribe returns a channel of encoded events and a function that ends the
// subscription.
func (h *Hub) Subscribe() (<-chan []byte, func()) {
	c := make(chan []byte, 256)
	h.mu.Lock()
	h.subs[c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		delete(h.subs, c)
		h.mu.Unlock()
	}
}

// MultiEvents sends each event to several sinks.
type MultiEvents []Events

// Emit implements Events.
func (m MultiEvents) Emit(name string, data any) {
	for _, e := range m {
		e.Emit(name, data)
	}
}
