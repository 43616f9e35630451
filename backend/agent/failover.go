package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"keyholder/backend/luks2"
	"keyholder/backend/release/wire"
)

// Pool is the consoles a volume's token names (replicas on one database, or
// load balancers), each with its own pin, tried in turn. Replicas share the
// database and the challenge key, so a request persisted at one is visible
// at all; a protocol run that breaks at one console is simply restarted at
// the next.
type Pool struct {
	clients []*Client
}

// NewPool returns a pool over consoles, in the order to try them. Every
// console needs an https URL and a valid pin.
func NewPool(consoles []luks2.Console) (*Pool, error) {
	if len(consoles) == 0 {
		return nil, errors.New("no console to ask: the token names none (pass --console and --pin)")
	}
	p := &Pool{}
	for _, c := range consoles {
		cl, err := NewClient(c.URL, c.SPKIPin)
		if err != nil {
			return nil, err
		}
		p.clients = append(p.clients, cl)
	}
	return p, nil
}

// PoolOf returns a pool over existing clients (tests, and one console).
func PoolOf(clients ...*Client) *Pool {
	return &Pool{clients: clients}
}

// Backoff is the wait between two rounds over the consoles: it starts at
// Base and doubles each round up to Max, with jitter (a uniformly random
// wait between half the step and the step), so that a fleet rebooting
// together does not hammer a recovering console in lock-step. The total is
// bounded by the request's MaxWait, and every wait ends with the context.
type Backoff struct {
	Base time.Duration // first step; default 1s (Request.PollEvery when set)
	Max  time.Duration // largest step; default 30s (Request.PollEvery when set)
	// Sleep waits d or until ctx ends; nil means a timer. Tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock the MaxWait deadline is measured on; nil: time.Now.
	Now func() time.Time
	// Jitter returns a duration in [0, d]; nil means uniformly random.
	Jitter func(d time.Duration) time.Duration
}

// Default back-off steps.
const (
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 30 * time.Second
)

func (b Backoff) withDefaults(pollEvery time.Duration) Backoff {
	if b.Base <= 0 && pollEvery > 0 {
		b.Base = pollEvery
		if b.Max <= 0 {
			b.Max = pollEvery
		}
	}
	if b.Base <= 0 {
		b.Base = DefaultBackoffBase
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	if b.Sleep == nil {
		b.Sleep = sleepCtx
	}
	if b.Now == nil {
		b.Now = time.Now
	}
	if b.Jitter == nil {
		b.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d + 1)
		}
	}
	return b
}

// Delay returns the wait after round (0 for the first round): the step
// min(Max, Base·2^round), of which the first half is always waited and the
// second half scaled by the jitter.
func (b Backoff) Delay(round int) time.Duration {
	b = b.withDefaults(0)
	step := b.Base
	for i := 0; i < round && step < b.Max; i++ {
		step *= 2
	}
	step = min(step, b.Max)
	half := step / 2
	j := b.Jitter(step - half)
	return half + min(max(j, 0), step-half)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// failure says what an error at one console means for the others.
type failure int

const (
	fatal     failure = iota // a refusal or a local failure: every console would say the same
	transient                // unreachable, busy, locked: ask again later
	wrongKey                 // not a console this volume trusts (pin mismatch): try the others
)

func classify(err error) failure {
	switch Code(err) {
	case wire.CodeUnavailable, wire.CodeRateLimited, wire.CodeNonceUnknown:
		return transient
	}
	var refused *RefusedError
	if errors.As(err, &refused) {
		return fatal
	}
	if errors.Is(err, wire.ErrPinMismatch) {
		return wrongKey
	}
	if isNetwork(err) {
		return transient
	}
	return fatal
}

// name labels an error with its console when there is more than one.
func (p *Pool) name(c *Client, err error) error {
	if len(p.clients) < 2 || err == nil {
		return err
	}
	return fmt.Errorf("console %s: %w", c.base, err)
}

// Obtain runs the release protocol at the first console that answers:
// each round tries every console in order (a run broken mid-protocol is
// restarted at the next one, with a fresh challenge and key); after a round
// in which some console could not answer yet, it waits with back-off and
// starts again, until MaxWait. A refusal ends it at once (the consoles
// share one database, so the others would refuse too), and so do local
// failures. While an officer decides, it polls the console that took the
// request and, when that one stops answering, the others.
func (p *Pool) Obtain(ctx context.Context, ev Evidencer, r Request) (*Result, error) {
	if len(p.clients) == 0 {
		return nil, errors.New("no console to ask")
	}
	if r.Purpose == "" {
		r.Purpose = wire.PurposeBoot
	}
	if r.MaxWait <= 0 {
		r.MaxWait = 20 * time.Minute
	}
	b := r.Backoff.withDefaults(r.PollEvery)
	deadline := b.Now().Add(r.MaxWait)
	var pr *prepared
	var rel wire.Release
	at := -1
	var longPoll bool
	for round := 0; at < 0; round++ {
		var last error
		waitable := false
		for i, c := range p.clients {
			var err error
			if pr, longPoll, err = c.begin(ctx, ev, r, &rel); err == nil {
				at = i
				break
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			err = p.name(c, err)
			switch classify(err) {
			case fatal:
				return nil, err
			case transient:
				waitable = true
			}
			last = err
		}
		if at >= 0 {
			break
		}
		if !waitable {
			return nil, last
		}
		wait := b.Delay(round)
		if b.Now().Add(wait).After(deadline) {
			return nil, last
		}
		if r.Retrying != nil {
			r.Retrying(last)
		}
		if err := b.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	for rel.Status == wire.StatusPending {
		if r.Waiting != nil {
			r.Waiting(&rel)
		}
		wait := time.Duration(rel.RetryAfter) * time.Second
		if wait <= 0 || wait > time.Minute {
			wait = 5 * time.Second
		}
		if r.PollEvery > 0 {
			wait = r.PollEvery
		}
		if longPoll {
			wait = 0 // the console holds the poll until the request changes
		}
		if b.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("no decision on request %s within %s", rel.RequestID, r.MaxWait)
		}
		if wait > 0 {
			if err := b.Sleep(ctx, wait); err != nil {
				return nil, err
			}
		}
		id := rel.RequestID
		if err := wire.CheckID(id); err != nil {
			return nil, fmt.Errorf("console answered a bad request ID: %w", err)
		}
		c := p.clients[at]
		var next wire.Release
		pollWait := max(min(deadline.Sub(b.Now()), longPollWait).Truncate(time.Second), time.Second)
		_, hdr, err := c.doH(ctx, http.MethodGet, fmt.Sprintf("/v1/release/%s?wait=%d", id, int(pollWait/time.Second)), nil, &next)
		longPoll = err == nil && hdr.Get(longPollHeader) != ""
		var refused *RefusedError
		switch {
		case err == nil:
			if b.Now().After(deadline) && next.Status == wire.StatusPending {
				return nil, fmt.Errorf("no decision on request %s within %s", rel.RequestID, r.MaxWait)
			}
			rel = next
		case errors.As(err, &refused) && refused.Reason.Code != wire.CodeUnavailable && refused.Reason.Code != wire.CodeRateLimited:
			return nil, p.name(c, err)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			// The console restarted, died or the network hiccupped: the
			// request persists in the shared database, so keep asking,
			// at the next console, until MaxWait.
			at = (at + 1) % len(p.clients)
			rel.RetryAfter = 5
		}
	}
	if rel.Status != wire.StatusReleased {
		return nil, fmt.Errorf("console answered status %q", rel.Status)
	}
	return open(pr, &rel)
}

// Heartbeat sends fresh evidence once, to the first console that answers.
func (p *Pool) Heartbeat(ctx context.Context, ev Evidencer, r Request) (*wire.Heartbeat, error) {
	var last error
	for _, c := range p.clients {
		hb, err := c.Heartbeat(ctx, ev, r)
		if err == nil {
			return hb, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		last = p.name(c, err)
		if classify(err) == fatal {
			return nil, last
		}
	}
	return nil, last
}

// ConfirmRotation tells the first console that answers that the volume
// opens with the new generation.
func (p *Pool) ConfirmRotation(ctx context.Context, vmID, volumeID string, res *Result) error {
	var last error
	for _, c := range p.clients {
		err := c.ConfirmRotation(ctx, vmID, volumeID, res)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = p.name(c, err)
		if classify(err) == fatal {
			return last
		}
	}
	return last
}
