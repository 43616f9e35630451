package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/google/go-tpm-tools/client"

	"keyholder/backend/internal/tpmwire"
	"keyholder/backend/release/wire"
)

// DefaultTPMDevice is the kernel's TPM resource manager.
const DefaultTPMDevice = "/dev/tpmrm0"

// DefaultEventLog is where the kernel exposes the firmware's TCG event log.
const DefaultEventLog = "/sys/kernel/security/tpm0/binary_bios_measurements"

// VTPM adds a go-tpm-tools vTPM attestation (quote over REPORT_DATA, PCRs,
// event log) to the SEV-SNP evidence of SNP. Its attestation key is bound
// into the report (AKBinder), which is how the console trusts the quote.
type VTPM struct {
	SNP Evidencer
	// Open opens the TPM; nil opens DefaultTPMDevice.
	Open func() (io.ReadWriteCloser, error)
	// EventLog is the TCG event log file; "" means DefaultEventLog (a
	// missing log is left out).
	EventLog string

	mu sync.Mutex // one TPM session at a time
}

func (v *VTPM) open() (io.ReadWriteCloser, error) {
	if v.Open != nil {
		return v.Open()
	}
	return openDefaultTPM()
}

func (v *VTPM) withAK(fn func(ak *client.Key) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	rwc, err := v.open()
	if err != nil {
		return fmt.Errorf("open the vTPM: %w", err)
	}
	defer rwc.Close()
	ak, err := client.AttestationKeyECC(rwc)
	if err != nil {
		return fmt.Errorf("vTPM attestation key: %w", err)
	}
	defer ak.Close()
	return fn(ak)
}

// AKDigest implements AKBinder: SHA-256 of the key's TPMT_PUBLIC.
func (v *VTPM) AKDigest(ctx context.Context) ([]byte, error) {
	var d []byte
	err := v.withAK(func(ak *client.Key) error {
		pub, err := ak.PublicArea().Encode()
		if err != nil {
			return err
		}
		sum := sha256.Sum256(pub)
		d = sum[:]
		return nil
	})
	return d, err
}

// Evidence implements Evidencer: the SNP evidence plus a vTPM quote whose
// nonce is reportData.
func (v *VTPM) Evidence(ctx context.Context, reportData [64]byte) (wire.Evidence, error) {
	ev, err := v.SNP.Evidence(ctx, reportData)
	if err != nil {
		return ev, err
	}
	logPath := v.EventLog
	if logPath == "" {
		logPath = DefaultEventLog
	}
	log, _ := os.ReadFile(logPath) // optional: the quote still proves the PCRs
	err = v.withAK(func(ak *client.Key) error {
		att, err := ak.Attest(client.AttestOpts{Nonce: reportData[:], TCGEventLog: log, SkipTeeAttestation: true})
		if err != nil {
			return fmt.Errorf("vTPM quote: %w", err)
		}
		raw, err := tpmwire.Marshal(att)
		if err != nil {
			return err
		}
		ev.TPM, err = FitTPMAttestation(raw)
		return err
	})
	return ev, err
}

// FitTPMAttestation keeps a go-tpm-tools attestation within the release
// API's limit (wire.MaxTPMSize, inside a 64 KiB request): when it is larger
// it drops the event logs, which are most of it. The quote still proves the
// PCRs; what only the event log shows (the Secure Boot state, the kernel
// command line) is then unknown to the console.
func FitTPMAttestation(raw []byte) ([]byte, error) {
	if len(raw) <= wire.MaxTPMSize {
		return raw, nil
	}
	att, err := tpmwire.Unmarshal(raw)
	if err != nil {
		return nil, fmt.Errorf("vTPM attestation: %w", err)
	}
	att.EventLog, att.CanonicalEventLog = nil, nil
	out, err := tpmwire.Marshal(att)
	if err != nil {
		return nil, err
	}
	if len(out) > wire.MaxTPMSize {
		return nil, fmt.Errorf("vTPM attestation is %d bytes without its event log, the console takes at most %d", len(out), wire.MaxTPMSize)
	}
	return out, nil
}
