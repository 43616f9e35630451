package app

import "keyholder/backend/custody"

// Keys serves the Keys screen: volumes and their release-secret generations.
type Keys struct{ *base }

// Volumes returns every encrypted volume (never key material).
func (k *Keys) Volumes() ([]custody.Volume, error) {
	vs, err := custody.ListVolumes(k.ctx, k.db)
	return vs, toError(k.log, "list volumes", err)
}
