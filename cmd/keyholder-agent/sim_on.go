//go:build simulate

package main

import (
	"crypto/sha256"
	"flag"
	"os"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
)

// simOptions choose the simulated chip of a development build.
type simOptions struct {
	product, chip string
	debug         bool
	maskChipID    bool
	vlek          bool
}

func (s *simOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.product, "sim-product", "Genoa", "simulated product: Milan, Genoa or Turin")
	fs.StringVar(&s.chip, "sim-chip", "chip-0", "name of the simulated chip (a different name is a different chip)")
	fs.BoolVar(&s.debug, "sim-debug", false, "launch with the debug policy bit (to see a refusal)")
	fs.BoolVar(&s.maskChipID, "sim-mask-chip-id", false, "the host zeroes CHIP_ID in reports (MASK_CHIP_ID)")
	fs.BoolVar(&s.vlek, "sim-vlek", false, "reports are signed by the simulated cloud provider's VLEK (no per-chip identity)")
}

func (s *simOptions) evidencer() (agent.Evidencer, error) {
	p, err := attest.ParseProduct(s.product)
	if err != nil {
		return nil, err
	}
	g, err := agentsim.NewGuest(p, s.chip)
	if err != nil {
		return nil, err
	}
	g.Debug = s.debug
	g.MaskChipID = s.maskChipID
	g.VLEK = s.vlek
	if b, err := os.ReadFile(bootIDPath); err == nil {
		g.SetLaunch(simLaunchID(s.chip, b))
	}
	return g, nil
}

// bootIDPath is the kernel's random ID of this boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// simLaunchID is the simulated REPORT_ID of this boot. A real launch keeps
// one REPORT_ID for its lifetime, so the agent in the initramfs and the
// heartbeats after it present the same one; the simulated chip derives it
// from the kernel's boot ID, which the initramfs and the running system share
// and every reboot changes.
func simLaunchID(chip string, bootID []byte) []byte {
	h := sha256.New()
	h.Write([]byte("keyholder simulated REPORT_ID\x00" + chip + "\x00"))
	h.Write(bootID)
	return h.Sum(nil)
}
