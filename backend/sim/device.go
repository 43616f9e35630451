package sim

import (
	"fmt"
	"sync"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"keyholder/backend/attest"
)

// Device is a simulated SEV-SNP guest device behind go-sev-guest's
// client.QuoteProvider and client.LeveledQuoteProvider interfaces, the ones
// the real configfs-tsm and /dev/sev-guest providers implement. A raw quote
// is the report followed by the extended report's certificate table, as on
// hardware. The agent's --simulate mode uses it in place of
// client.GetQuoteProvider().
type Device struct {
	chip *Chip
	mu   sync.Mutex
	opts ReportOptions
}

var (
	_ client.QuoteProvider        = (*Device)(nil)
	_ client.LeveledQuoteProvider = (*Device)(nil)
)

// NewDevice returns a device of chip c whose reports carry o's fields
// (o.ReportData and o.VMPL are replaced per request; o.Certs is ignored:
// quotes always carry the certificate table).
func NewDevice(c *Chip, o ReportOptions) *Device {
	return &Device{chip: c, opts: o}
}

// SetOptions changes the fields of later reports: a firmware update (TCB), a
// new launch (measurement), a debug policy, for demos.
func (d *Device) SetOptions(o ReportOptions) {
	d.mu.Lock()
	d.opts = o
	d.mu.Unlock()
}

// Chip is the device's chip.
func (d *Device) Chip() *Chip { return d.chip }

// IsSupported is always true for the simulated device.
func (d *Device) IsSupported() bool { return true }

// GetRawQuote returns a report at VMPL 0 and its certificate table.
func (d *Device) GetRawQuote(reportData [64]byte) ([]uint8, error) {
	return d.GetRawQuoteAtLevel(reportData, 0)
}

// GetRawQuoteAtLevel returns a report at the given VMPL and its certificate table.
func (d *Device) GetRawQuoteAtLevel(reportData [64]byte, vmpl uint) ([]uint8, error) {
	if vmpl > 3 {
		return nil, fmt.Errorf("VMPL %d is out of range 0-3", vmpl)
	}
	d.mu.Lock()
	o := d.opts
	d.mu.Unlock()
	o.ReportData, o.VMPL, o.Certs = reportData, uint32(vmpl), CertTable
	report, table, err := d.chip.Report(o)
	if err != nil {
		return nil, err
	}
	return append(report, table...), nil
}

// Product describes the simulated chip (deprecated in go-sev-guest, still
// part of its interfaces).
func (d *Device) Product() *spb.SevProduct {
	// The family, model and stepping of each product's CPUID, as the KDS
	// specification lists them (Milan B1, Genoa B1, Turin C0).
	switch d.chip.product {
	case attest.Milan:
		return abi.SevProductFromCpuid1Eax(abi.FmsToCpuid1Eax(0x19, 0x01, 1))
	case attest.Genoa:
		return abi.SevProductFromCpuid1Eax(abi.FmsToCpuid1Eax(0x19, 0x11, 1))
	case attest.Turin:
		return abi.SevProductFromCpuid1Eax(abi.FmsToCpuid1Eax(0x1A, 0x02, 0))
	}
	return &spb.SevProduct{Name: spb.SevProduct_SEV_PRODUCT_UNKNOWN}
}
