package app

import (
	"sync"

	"keyholder/backend/custody"
	"keyholder/backend/release"
)

// Approvals serves the Approvals screen: release requests waiting for an
// officer, and the release policy.
type Approvals struct {
	*base
	once sync.Once
	eng  *release.Service
	err  error
}

// engine returns the release engine: the configured one, or an
// officer-side one over the store (approve, deny, list) when this process
// does not serve releases.
func (a *Approvals) engine() (*release.Service, error) {
	a.once.Do(func() {
		if a.cfg.Release != nil {
			a.eng = a.cfg.Release
			return
		}
		a.eng, a.err = release.New(release.Config{DB: a.db, Secrets: a.custody, Now: a.cfg.Now, Log: a.log})
	})
	return a.eng, a.err
}

// Pending returns the requests that wait for a decision, newest first.
func (a *Approvals) Pending(c Caller) ([]release.Request, error) {
	return a.List(c, string(release.StatusPending))
}

// List returns requests with a status (pending, approved, denied, expired,
// completed; "" for all), newest first, each with its approvals.
func (a *Approvals) List(c Caller, status string) ([]release.Request, error) {
	if _, err := a.session.requireOfficer(c); err != nil {
		return nil, err
	}
	rs, err := release.ListRequests(a.ctx, a.db, release.RequestStatus(status))
	return rs, toError(a.log, "list requests", err)
}

// Get returns one request with its approvals.
func (a *Approvals) Get(c Caller, id string) (release.Request, error) {
	if _, err := a.session.requireOfficer(c); err != nil {
		return release.Request{}, err
	}
	r, err := release.GetRequest(a.ctx, a.db, id)
	return r, toError(a.log, "read request", err)
}

// Approve records the logged-in officer's approval of request id, bound to
// the evidence it carries. Needs an approver or admin who authenticated
// recently (CodeReauth otherwise: Session.Unlock, then retry). A class that
// needs M of N officers stays pending until M distinct officers approved.
func (a *Approvals) Approve(c Caller, id, note string) (release.Request, error) {
	o, authAt, err := a.session.requireFreshAt(c, custody.RoleApprover, custody.RoleAdmin)
	if err != nil {
		return release.Request{}, err
	}
	eng, err := a.engine()
	if err != nil {
		return release.Request{}, toError(a.log, "approve request", err)
	}
	r, err := eng.Approve(a.ctx, id, release.Approver{Name: o.Name, AuthenticatedAt: authAt}, note)
	if err == nil && a.cfg.Release == nil {
		// A served engine reports its own changes (Services.ConnectRelease).
		a.events.Emit(EventApprovalsChanged, r)
	}
	return r, toError(a.log, "approve request", err)
}

// Deny refuses request id for good (same role and freshness as Approve).
// note is the reason, required: a blank one is refused with CodeInvalid on
// the field "reason".
func (a *Approvals) Deny(c Caller, id, note string) (release.Request, error) {
	o, authAt, err := a.session.requireFreshAt(c, custody.RoleApprover, custody.RoleAdmin)
	if err != nil {
		return release.Request{}, err
	}
	eng, err := a.engine()
	if err != nil {
		return release.Request{}, toError(a.log, "deny request", err)
	}
	r, err := eng.Deny(a.ctx, id, release.Approver{Name: o.Name, AuthenticatedAt: authAt}, note)
	if err == nil && a.cfg.Release == nil {
		// A served engine reports its own changes (Services.ConnectRelease).
		a.events.Emit(EventApprovalsChanged, r)
	}
	return r, toError(a.log, "deny request", err)
}

// Policy returns the effective release policy of an image ("" for the
// console default).
func (a *Approvals) Policy(c Caller, imageID string) (release.Policy, error) {
	if _, err := a.session.requireOfficer(c); err != nil {
		return release.Policy{}, err
	}
	p, err := release.LoadPolicy(a.ctx, a.db, imageID)
	return p, toError(a.log, "read release policy", err)
}

// SetPolicy asks to change the console default (imageID "") or an image's
// policy (nil removes the image's override). A change that loosens control
// (fewer approvals for some class, a denied class allowed, migration
// agents allowed) is an admin action under the two-person rule; a stricter
// one happens at once. Admins only, recently authenticated.
func (a *Approvals) SetPolicy(c Caller, imageID string, p *release.Policy) (AdminOutcome, error) {
	by, err := a.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	act, err := a.quorum.SetPolicy(a.ctx, by, imageID, p)
	return a.outcome("change release policy", act, err)
}
