package app

import "keyholder/backend/fleet"

// Fleet serves the Fleet screen: every guest and its attestation status.
type Fleet struct {
	*base
	svc *fleet.Service
}

func newFleet(b *base) *Fleet { return &Fleet{base: b, svc: fleet.New(b.db)} }

// List returns the guests matching f.
func (f *Fleet) List(filter fleet.Filter) ([]fleet.Guest, error) {
	gs, err := f.svc.List(f.ctx, filter)
	return gs, toError(f.log, "list guests", err)
}

// Summary counts the guests by status.
func (f *Fleet) Summary() (fleet.Summary, error) {
	s, err := f.svc.Summary(f.ctx)
	return s, toError(f.log, "count guests", err)
}
