package app

import (
	"context"
	"sync"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/release"
)

// Fleet serves the Fleet and Guest screens: every guest, its attestation
// status and history.
type Fleet struct {
	*base
	svc *fleet.Service
}

func newFleet(b *base) *Fleet { return &Fleet{base: b, svc: fleet.New(b.db, b.custody.AuditLog())} }

// List returns the guests matching f. It runs in the call's context: a
// browser that navigates away from a large listing cancels its query, so it
// does not hold up the next page's calls.
func (f *Fleet) List(c Caller, filter fleet.Filter) ([]fleet.Guest, error) {
	if !filter.ValidPage() {
		return nil, &Error{Code: CodeInvalid, Message: fleet.ErrInvalidPage.Error()}
	}
	gs, err := f.svc.List(c.Context(), filter)
	return gs, toError(f.log, "list guests", err)
}

// Summary counts the guests by status.
func (f *Fleet) Summary() (fleet.Summary, error) {
	s, err := f.svc.Summary(f.ctx)
	return s, toError(f.log, "count guests", err)
}

// Guest returns one guest with its latest 200 attestation results.
func (f *Fleet) Guest(c Caller, id string) (fleet.GuestDetail, error) {
	if _, err := f.session.requireOfficer(c); err != nil {
		return fleet.GuestDetail{}, err
	}
	d, err := f.svc.Get(f.ctx, id, 200)
	return d, toError(f.log, "read guest", err)
}

// Revoke refuses every further release and heartbeat of guest id until an
// officer reinstates it. Approvers and admins, recently authenticated.
func (f *Fleet) Revoke(c Caller, id, reason string) error {
	o, err := f.session.requireFresh(c, custody.RoleApprover, custody.RoleAdmin)
	if err != nil {
		return err
	}
	err = f.svc.Revoke(f.ctx, "officer:"+o.Name, id, reason, release.DenyRequestsOfRevokedTx)
	if err == nil {
		f.emitGuest(id)
	}
	return toError(f.log, "revoke guest", err)
}

// Reinstate clears a guest's revocation; its next request is classified
// afresh (and usually needs an approval).
func (f *Fleet) Reinstate(c Caller, id, reason string) error {
	o, err := f.session.requireFresh(c, custody.RoleApprover, custody.RoleAdmin)
	if err != nil {
		return err
	}
	err = f.svc.Reinstate(f.ctx, "officer:"+o.Name, id, reason)
	if err == nil {
		f.emitGuest(id)
	}
	return toError(f.log, "reinstate guest", err)
}

// ReleaseAPI describes the release listener for Settings and manifests.
type ReleaseAPI struct {
	Serving bool   `json:"serving"`
	Address string `json:"address"`
	// Pin is the hex SHA-256 of the listener certificate's public key.
	Pin string `json:"pin"`
}

// ReleaseAPI reports where this console serves the release API and its pin.
func (f *Fleet) ReleaseAPI() (ReleaseAPI, error) {
	if f.cfg.Release == nil {
		return ReleaseAPI{}, nil
	}
	addr, pin := f.cfg.Release.Listener()
	return ReleaseAPI{Serving: addr != "", Address: addr, Pin: pin}, nil
}

func (f *Fleet) emitGuest(id string) {
	if d, err := f.svc.Get(f.ctx, id, 1); err == nil {
		f.events.Emit(EventFleetChanged, d.Guest)
	}
}

// ConnectRelease routes the release engine's events to the frontend:
// EventApprovalsChanged with the release.Request, and EventFleetChanged
// with the changed fleet.Guests — coalesced every 250 ms into one array
// read in one query, and as one nil ("reload") only when more than
// maxPushed guests changed, so a boot storm does not flood the UI and a
// busy large fleet is never reloaded whole for a few dozen heartbeats.
// main calls it once after New when cfg.Release is set.
func (s *Services) ConnectRelease() {
	b := s.Fleet.base
	if b.cfg.Release == nil {
		return
	}
	n := &fleetNotifier{f: s.Fleet, dirty: map[string]bool{}}
	b.cfg.Release.OnEvent(func(ev release.Event) {
		switch ev.Kind {
		case "request":
			if r, err := release.GetRequest(b.ctx, b.db, ev.RequestID); err == nil {
				b.events.Emit(EventApprovalsChanged, r)
			}
		case "fleet":
			n.mark(ev.VMID)
		case release.EventResync:
			if l, ok := b.events.(interface{ Lost() }); ok {
				l.Lost()
			}
		}
	})
	go n.run(b.ctx)
}

// maxPushed is how many changed guests one EventFleetChanged carries; more
// make it a reload.
const maxPushed = 500

type fleetNotifier struct {
	f     *Fleet
	mu    sync.Mutex
	dirty map[string]bool
}

func (n *fleetNotifier) mark(id string) {
	n.mu.Lock()
	n.dirty[id] = true
	n.mu.Unlock()
}

func (n *fleetNotifier) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		ids := n.dirty
		n.dirty = map[string]bool{}
		n.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		if len(ids) > maxPushed {
			n.f.events.Emit(EventFleetChanged, nil)
			continue
		}
		list := make([]string, 0, len(ids))
		for id := range ids {
			list = append(list, id)
		}
		if gs, err := n.f.svc.Guests(ctx, list); err == nil && len(gs) > 0 {
			n.f.events.Emit(EventFleetChanged, gs)
		}
	}
}
