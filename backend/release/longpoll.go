package release

import (
	"context"
	"sync"
	"time"

	"keyholder/backend/release/wire"
)

// MaxPollWait is the longest a guest's poll waits for its request to
// change (below the release server's write timeout).
const MaxPollWait = 25 * time.Second

// LongPollHeader, on a pending answer, says the console holds a poll that
// asks to wait (GET /v1/release/{id}?wait=seconds) until the request
// changes; its value is the longest wait in seconds.
const LongPollHeader = "Keyholder-Long-Poll"

// pollWaiters are the polls waiting for their request to change, woken by
// the engine's events. Their number is bounded: a poll beyond the bound is
// answered at once, as before long polls.
type pollWaiters struct {
	mu  sync.Mutex
	max int
	n   int
	m   map[string]map[chan struct{}]struct{}
}

func newPollWaiters(max int) *pollWaiters {
	return &pollWaiters{max: max, m: make(map[string]map[chan struct{}]struct{})}
}

// add registers a waiter for id; ok is false when too many wait.
func (p *pollWaiters) add(id string) (ch chan struct{}, remove func(), ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n >= p.max {
		return nil, nil, false
	}
	ch = make(chan struct{})
	set := p.m[id]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		p.m[id] = set
	}
	set[ch] = struct{}{}
	p.n++
	return ch, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if s, found := p.m[id]; found {
			if _, mine := s[ch]; mine {
				delete(s, ch)
				p.n--
				if len(s) == 0 {
					delete(p.m, id)
				}
			}
		}
	}, true
}

// wake releases every waiter for id.
func (p *pollWaiters) wake(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch := range p.m[id] {
		close(ch)
		p.n--
	}
	delete(p.m, id)
}

// wakeAll releases every waiter: the events that would have woken some
// of them may have been lost.
func (p *pollWaiters) wakeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, set := range p.m {
		for ch := range set {
			close(ch)
		}
	}
	p.m = make(map[string]map[chan struct{}]struct{})
	p.n = 0
}

// waiting is the number of polls waiting now.
func (p *pollWaiters) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// PollWait is Poll that, while the request is pending, waits up to wait
// (at most MaxPollWait) for it to change and answers then. waited reports
// whether the poll had a place to wait (their number is bounded); when it
// did not, the answer is Poll's, at once.
func (s *Service) PollWait(ctx context.Context, id string, wait time.Duration) (rel *wire.Release, waited bool, err error) {
	if wait <= 0 {
		rel, err = s.Poll(ctx, id)
		return rel, false, err
	}
	wait = min(wait, MaxPollWait)
	// Register before reading, so that a change committed between the read
	// and the wait still wakes this poll.
	ch, remove, ok := s.waiters.add(id)
	if !ok {
		rel, err = s.Poll(ctx, id)
		return rel, false, err
	}
	defer remove()
	rel, err = s.Poll(ctx, id)
	if err != nil || rel.Status != wire.StatusPending {
		return rel, true, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return nil, true, refusal(wire.CodeUnavailable, "the poll was cancelled")
	case <-s.closed:
	}
	rel, err = s.Poll(ctx, id)
	return rel, true, err
}
