package app

import (
	"keyholder/backend/attest"
)

// References lists the versions of an image's reference values, newest first.
func (i *Images) References(c Caller, imageID string) ([]attest.ReferenceVersion, error) {
	if _, err := i.session.requireOfficer(c); err != nil {
		return nil, err
	}
	vs, err := attest.NewReferences(i.db).List(i.ctx, imageID)
	return vs, toError(i.log, "list reference values", err)
}

// SetReference asks to store a new version of an image's reference values
// (the measurements a guest of that image must prove, minimum TCB, policy
// bits). Old versions are kept. Trusting reference values by hand is an
// admin action under the two-person rule. Admins only, with a recent
// authentication.
func (i *Images) SetReference(c Caller, imageID string, values attest.ReferenceValues, comment string) (AdminOutcome, error) {
	by, err := i.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	a, err := i.quorum.SetReference(i.ctx, by, imageID, values, comment)
	if err != nil {
		return AdminOutcome{}, toError(i.log, "store reference values", err)
	}
	return i.outcome("store reference values", a, nil)
}
