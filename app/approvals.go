package app

import "keyholder/backend/release"

// Approvals serves the Approvals screen: release requests waiting for an officer.
type Approvals struct{ *base }

// Pending returns the requests that wait for a decision, newest first.
func (a *Approvals) Pending() ([]release.Request, error) {
	rs, err := release.ListRequests(a.ctx, a.db, "pending")
	return rs, toError(a.log, "list pending requests", err)
}
