// Package agentsim stands in for a confidential VM's SEV-SNP firmware: an
// Evidencer whose reports are signed by the simulated AMD root of
// backend/sim. The demo fleet, tests and the agent's --simulate build use
// it; no release or verification path imports it. Everything it makes is
// SIMULATED evidence, which a console accepts only in development mode.
package agentsim

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"

	"keyholder/backend/attest"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
)

// Guest is a simulated guest's firmware: which chip it runs on, what was
// launched, and with which policy. Change fields between calls to model
// migrations, TCB updates and the like; NewLaunch models a reboot.
type Guest struct {
	mu          sync.Mutex
	Chip        *sim.Chip
	Measurement []byte      // nil: sim.DemoMeasurement
	TCB         *attest.TCB // nil: the chip's default
	Debug       bool
	// VLEK signs with the simulated cloud provider's VLEK (no per-chip
	// identity); MaskChipID has the host zero CHIP_ID (MASK_CHIP_ID).
	VLEK       bool
	MaskChipID bool
	launch     []byte
}

// NewGuest returns a guest on the simulated chip named chipSeed of product p.
func NewGuest(p attest.Product, chipSeed string) (*Guest, error) {
	c, err := sim.NewChip(p, chipSeed)
	if err != nil {
		return nil, err
	}
	g := &Guest{Chip: c}
	g.NewLaunch()
	return g, nil
}

// NewLaunch gives the guest a new REPORT_ID, as a reboot does.
func (g *Guest) NewLaunch() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.launch = make([]byte, 32)
	rand.Read(g.launch)
}

// SetLaunch sets the REPORT_ID (a restored snapshot of an earlier launch).
func (g *Guest) SetLaunch(id []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.launch = append([]byte(nil), id...)
}

// Launch returns the current REPORT_ID.
func (g *Guest) Launch() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]byte(nil), g.launch...)
}

// SetDebug sets the debug policy bit of the next reports.
func (g *Guest) SetDebug(on bool) { g.mu.Lock(); g.Debug = on; g.mu.Unlock() }

// SetMeasurement sets the launch measurement of the next reports.
func (g *Guest) SetMeasurement(m []byte) { g.mu.Lock(); g.Measurement = m; g.mu.Unlock() }

// SetTCB sets the reported TCB of the next reports (nil: the chip's default).
func (g *Guest) SetTCB(t *attest.TCB) { g.mu.Lock(); g.TCB = t; g.mu.Unlock() }

// MoveTo puts the guest on another chip (a migration).
func (g *Guest) MoveTo(p attest.Product, chipSeed string) error {
	c, err := sim.NewChip(p, chipSeed)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.Chip = c
	g.mu.Unlock()
	return nil
}

// Evidence implements agent.Evidencer.
func (g *Guest) Evidence(ctx context.Context, reportData [64]byte) (wire.Evidence, error) {
	g.mu.Lock()
	o := sim.ReportOptions{ReportData: reportData, Measurement: g.Measurement, ReportID: g.launch, TCB: g.TCB, VLEK: g.VLEK, MaskChipID: g.MaskChipID,
		Policy: attest.PolicyBits(g.Debug, false, false, false), Certs: sim.CertTable}
	c := g.Chip
	g.mu.Unlock()
	ev, err := c.Evidence(o)
	if err != nil {
		return wire.Evidence{}, fmt.Errorf("simulated report: %w", err)
	}
	return FromAttest(ev), nil
}

// FromAttest converts attestation evidence to its wire form.
func FromAttest(ev *attest.Evidence) wire.Evidence {
	return wire.Evidence{Report: ev.Report, CertTable: ev.CertTable, VCEK: ev.VCEK, VLEK: ev.VLEK, ASK: ev.ASK, ASVK: ev.ASVK, ARK: ev.ARK, TPM: ev.TPM}
}
