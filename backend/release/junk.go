package release

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/release/wire"
)

// Junk is every request refused before it showed a valid challenge: bodies
// that do not decode, unknown, forged, expired or replayed nonces, requests
// over a source's rate limit, requests shed because the console is full.
// None of it is audited one by one (a stranger could grow the log without
// bound); junkLog counts it per network (/24 or /64) and address, and
// flush writes one audit entry per network per interval with the counts.
//
// Its memory is bounded: at most maxJunkNets networks (the rest are counted
// together as "other networks") and maxJunkAddrs addresses per network (the
// rest as "other addresses").
type junkLog struct {
	mu    sync.Mutex
	since time.Time
	nets  map[string]*junkNet
	now   func() time.Time
}

const (
	maxJunkNets  = 1024
	maxJunkAddrs = 32
	otherNets    = "other networks"
)

type junkNet struct {
	total  int
	codes  map[wire.Code]int
	addrs  map[string]int
	others int // requests from addresses beyond maxJunkAddrs
}

func newJunkLog(now func() time.Time) *junkLog {
	return &junkLog{nets: map[string]*junkNet{}, now: now, since: now()}
}

// count records one junk request from src refused with code.
func (j *junkLog) count(src source, code wire.Code) {
	j.mu.Lock()
	defer j.mu.Unlock()
	key := src.net
	n := j.nets[key]
	if n == nil {
		if len(j.nets) >= maxJunkNets {
			key = otherNets
			n = j.nets[key]
		}
		if n == nil {
			n = &junkNet{codes: map[wire.Code]int{}, addrs: map[string]int{}}
			j.nets[key] = n
		}
	}
	n.total++
	n.codes[code]++
	if _, ok := n.addrs[src.addr]; ok || (len(n.addrs) < maxJunkAddrs && key != otherNets) {
		n.addrs[src.addr]++
	} else {
		n.others++
	}
}

// pending is the number of junk requests counted and not yet audited.
func (j *junkLog) pending() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	t := 0
	for _, n := range j.nets {
		t += n.total
	}
	return t
}

// take returns the counts since the last take and starts a new interval.
func (j *junkLog) take() (map[string]*junkNet, time.Time, time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	nets, since, now := j.nets, j.since, j.now()
	j.nets, j.since = map[string]*junkNet{}, now
	return nets, since, now
}

// entries makes the audit entries for one interval's counts: one per
// network, in network order.
func junkEntries(nets map[string]*junkNet, since, now time.Time) []audit.Entry {
	var out []audit.Entry
	for _, key := range slices.Sorted(maps.Keys(nets)) {
		n := nets[key]
		var b strings.Builder
		fmt.Fprintf(&b, "%d request(s) refused before showing a valid challenge since %s:", n.total, since.UTC().Format(time.RFC3339))
		for _, c := range slices.Sorted(maps.Keys(n.codes)) {
			fmt.Fprintf(&b, " %s %d,", c, n.codes[c])
		}
		b.WriteString(" from")
		addrs := slices.SortedFunc(maps.Keys(n.addrs), func(a, b string) int {
			if d := n.addrs[b] - n.addrs[a]; d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		for i, a := range addrs {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s (%d)", a, n.addrs[a])
		}
		if n.others > 0 {
			fmt.Fprintf(&b, ", other addresses (%d)", n.others)
		}
		out = append(out, audit.Entry{At: now, Actor: "network:" + key, Action: "release.junk", Subject: key,
			Decision: "refused", Reason: b.String()})
	}
	return out
}

// FlushJunk writes the junk counted since the last flush to the audit log,
// one entry per source network, and starts a new interval. Counts that
// could not be written are lost (their audit entry says what was lost only
// in the log the caller keeps); junk never blocks the release path.
func (h *Handler) FlushJunk(ctx context.Context) error {
	nets, since, now := h.junk.take()
	if len(nets) == 0 {
		return nil
	}
	entries := junkEntries(nets, since, now)
	return h.svc.tx(ctx, func(tx *sql.Tx) error {
		for _, e := range entries {
			if _, err := h.svc.audit.Append(stmtContext(ctx), tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// RunJunkAudit flushes the junk counts every interval until ctx ends.
func (h *Handler) RunJunkAudit(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.FlushJunk(context.WithoutCancel(ctx))
			return
		case <-t.C:
			if err := h.FlushJunk(ctx); err != nil && ctx.Err() == nil {
				h.log.Warn("audit junk requests", "err", err)
			}
		}
	}
}
