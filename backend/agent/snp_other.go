//go:build !linux

package agent

import (
	"context"
	"errors"

	"keyholder/backend/release/wire"
)

// SNPDevice is the SEV-SNP guest device; it exists only on Linux.
type SNPDevice struct{}

// Evidence implements Evidencer.
func (SNPDevice) Evidence(ctx context.Context, reportData [64]byte) (wire.Evidence, error) {
	return wire.Evidence{}, errors.New("SEV-SNP guest reports need Linux")
}
