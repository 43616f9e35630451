// Package simtpm makes vTPM attestations with go-tpm-tools' TPM simulator
// (the Microsoft reference TPM, compiled with cgo), replaying recorded boot
// event logs so that they verify and parse like a real guest's. It is apart
// from package sim so that binaries that simulate only SEV-SNP stay free of cgo.
package simtpm

import (
	_ "embed"
	"fmt"

	"github.com/google/go-eventlog/register"
	"github.com/google/go-eventlog/tcg"
	"github.com/google/go-tpm-tools/client"
	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/legacy/tpm2"
	"github.com/google/go-tpm/tpmutil"

	"keyholder/backend/internal/tpmwire"
)

var (
	//go:embed eventlogs/rhel8-uefi.bin
	secureBootLog []byte
	//go:embed eventlogs/ubuntu-2404-amd-sevsnp.bin
	noSecureBootLog []byte
)

// NoSecureBootCmdline is the kernel command line in the Secure Boot off
// (Ubuntu 24.04 SEV-SNP) event log.
const NoSecureBootCmdline = "/vmlinuz-6.8.0-1010-gcp root=PARTUUID=8270f3c9-b4e4-4345-80ee-5a62db7ebf3f ro console=ttyS0,115200 panic=-1"

// Options choose a simulated vTPM and the boot it measured.
type Options struct {
	// Seed fixes the TPM's identity: the same seed gives the same
	// attestation key in every process.
	Seed int64
	// SecureBoot replays a RHEL 8 UEFI boot with Secure Boot on; false
	// replays an Ubuntu 24.04 SEV-SNP guest's boot, with Secure Boot off.
	SecureBoot bool
	// ExtraPCR16 is extended into PCR 16 after boot (changes its value), for
	// PCR pinning tests.
	ExtraPCR16 []byte
}

// Attestation boots go-tpm-tools' TPM simulator, replays a recorded boot
// event log into its PCRs, and returns a go-tpm-tools attest.Attestation
// (protobuf wire format) over nonce, signed by an ECC attestation key. Only
// one simulator runs per process; concurrent calls wait for each other.
func Attestation(o Options, nonce []byte) ([]byte, error) {
	if len(nonce) == 0 {
		return nil, fmt.Errorf("vTPM attestation needs a nonce")
	}
	log := noSecureBootLog
	if o.SecureBoot {
		log = secureBootLog
	}
	return attestLog(o, log, nonce)
}

func attestLog(o Options, log, nonce []byte) ([]byte, error) {
	tpm, err := simulator.GetWithFixedSeedInsecure(o.Seed)
	if err != nil {
		return nil, fmt.Errorf("start TPM simulator: %w", err)
	}
	defer tpm.Close()
	el, err := tcg.ParseEventLog(log, tcg.ParseOpts{})
	if err != nil {
		return nil, fmt.Errorf("parse recorded event log: %w", err)
	}
	for _, alg := range []register.HashAlg{register.HashSHA1, register.HashSHA256, register.HashSHA384} {
		for _, e := range el.Events(alg) {
			if e.Type == 0x03 || len(e.Digest) == 0 { // EV_NO_ACTION is not extended
				continue
			}
			if err := tpm2.PCRExtend(tpm, tpmutil.Handle(e.Index), alg.GoTPMAlg(), e.Digest, ""); err != nil {
				return nil, fmt.Errorf("replay event into PCR %d: %w", e.Index, err)
			}
		}
	}
	if len(o.ExtraPCR16) > 0 {
		if err := tpm2.PCREvent(tpm, tpmutil.Handle(16), o.ExtraPCR16); err != nil {
			return nil, fmt.Errorf("extend PCR 16: %w", err)
		}
	}
	ak, err := client.AttestationKeyECC(tpm)
	if err != nil {
		return nil, fmt.Errorf("create attestation key: %w", err)
	}
	defer ak.Close()
	att, err := ak.Attest(client.AttestOpts{Nonce: nonce, TCGEventLog: log, SkipTeeAttestation: true})
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	return tpmwire.Marshal(att)
}
