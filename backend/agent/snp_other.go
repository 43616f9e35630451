//go:build !linux

package agent

import (
	"context"
	"errors"
	"io"

	"keyholder/backend/release/wire"
)

// SNPDevice is the SEV-SNP guest device; it exists only on Linux.
type SNPDevice struct{}

// Evidence implements Evidencer.
func (SNPDevice) Evidence(ctx context.Context, reportData [64]byte) (wire.Evidence, error) {
	return wire.Evidence{}, errors.New("SEV-SNP guest reports need Linux")
}

func openDefaultTPM() (io.ReadWriteCloser, error) {
	return nil, errors.New("the vTPM is used on Linux only")
}
