//go:build linux

package agent

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-sev-guest/client"
	"github.com/google/go-tpm/legacy/tpm2"

	"keyholder/backend/release/wire"
)

// SNPDevice gets extended reports from the SEV-SNP guest firmware through
// go-sev-guest: configfs-tsm first, /dev/sev-guest as the fallback.
type SNPDevice struct{}

// Evidence implements Evidencer.
func (SNPDevice) Evidence(ctx context.Context, reportData [64]byte) (wire.Evidence, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return wire.Evidence{}, fmt.Errorf("SEV-SNP guest device: %w (is this a confidential VM with the sev-guest driver?)", err)
	}
	raw, err := qp.GetRawQuote(reportData)
	if err != nil {
		return wire.Evidence{}, fmt.Errorf("SEV-SNP report: %w", err)
	}
	if len(raw) < wire.SnpReportSize {
		return wire.Evidence{}, fmt.Errorf("SEV-SNP report is %d bytes, want at least %d", len(raw), wire.SnpReportSize)
	}
	ev := wire.Evidence{Report: raw[:wire.SnpReportSize]}
	if len(raw) > wire.SnpReportSize {
		ev.CertTable = raw[wire.SnpReportSize:]
	}
	return ev, nil
}

func openDefaultTPM() (io.ReadWriteCloser, error) { return tpm2.OpenTPM(DefaultTPMDevice) }
