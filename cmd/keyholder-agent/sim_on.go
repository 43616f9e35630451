//go:build simulate

package main

import (
	"flag"

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
	return g, nil
}
