package replica

import (
	"context"
	"encoding/json"

	"keyholder/backend/release"
)

// channel is the notification channel of release events.
const channel = "keyholder_events"

type envelope struct {
	From      string `json:"from"`
	Kind      string `json:"kind"`
	VMID      string `json:"vm,omitempty"`
	RequestID string `json:"req,omitempty"`
}

// Bridge carries the release engine's events between the replicas on the
// database until ctx ends: an approval on one replica wakes the guest that
// polls another, and every replica's officers see the change live. Events
// are sent from a queue so the release path never waits for the database;
// a full queue drops (officers' views reload on the next event, guests
// re-read on their next poll).
func (r *Replica) Bridge(ctx context.Context, eng *release.Service) { r.bridge(ctx, eng, nil) }

func (r *Replica) bridge(ctx context.Context, eng *release.Service, ready func()) {
	q := make(chan envelope, 4096)
	eng.SetBroadcast(func(ev release.Event) {
		select {
		case q <- envelope{From: r.id, Kind: ev.Kind, VMID: ev.VMID, RequestID: ev.RequestID}:
		default:
		}
	})
	go func() {
		for {
			var e envelope
			select {
			case <-ctx.Done():
				return
			case e = <-q:
			}
			r.db.NotifyAll(ctx, channel, drain(e, q, maxNotifyBatch))
		}
	}()
	// Notifications sent while the listener reconnects are lost: after
	// every reconnect (not the first connection) this replica's views and
	// waiting polls re-read what they show.
	connected := false
	onReady := func() {
		if connected {
			eng.Deliver(release.Event{Kind: release.EventResync})
		}
		connected = true
		if ready != nil {
			ready()
		}
	}
	go r.db.Listen(ctx, channel, onReady, func(payload string) {
		var e envelope
		if json.Unmarshal([]byte(payload), &e) != nil || e.From == r.id {
			return
		}
		eng.Deliver(release.Event{Kind: e.Kind, VMID: e.VMID, RequestID: e.RequestID})
	})
}

// maxNotifyBatch bounds the notifications sent in one transaction.
const maxNotifyBatch = 256

// drain returns first and the events waiting in q behind it (at most max
// in all), each once, as notification payloads: under a storm the events
// of many decisions go out in one transaction (a notifying transaction
// commits, and waits for the disk, like any other; PostgreSQL also
// serialises the commits of all notifying transactions), and a VM that
// changed twice meanwhile is announced once.
func drain(first envelope, q <-chan envelope, max int) []string {
	seen := map[envelope]bool{first: true}
	out := []string{encode(first)}
	for len(out) < max {
		select {
		case e := <-q:
			if seen[e] {
				continue
			}
			seen[e] = true
			out = append(out, encode(e))
		default:
			return out
		}
	}
	return out
}

func encode(e envelope) string {
	b, _ := json.Marshal(e)
	return string(b)
}
