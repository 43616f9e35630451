package sim

import (
	"crypto/ecdsa"
	"crypto/sha512"
	"fmt"
	"sync"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"keyholder/backend/attest"
)

// Chip is one simulated AMD processor: a product, a 64-byte chip ID and a
// VCEK per TCB, all derived from its seed.
type Chip struct {
	root    *AMDRoot
	product attest.Product
	seed    string
	id      [64]byte

	mu    sync.Mutex
	vceks map[uint64]*signingKey
}

// NewChip returns the simulated chip of product p named by seed (any
// string; the same seed gives the same chip in every process).
func NewChip(p attest.Product, seed string) (*Chip, error) { return Root().NewChip(p, seed) }

// NewChip returns the simulated chip of product p named by seed.
func (r *AMDRoot) NewChip(p attest.Product, seed string) (*Chip, error) {
	if err := productOK(p); err != nil {
		return nil, err
	}
	c := &Chip{root: r, product: p, seed: seed, vceks: map[uint64]*signingKey{}}
	c.id = sha512.Sum512([]byte(Seed + "/chip/" + string(p) + "/" + seed))
	return c, nil
}

// Product is the chip's product.
func (c *Chip) Product() attest.Product { return c.product }

// ID is the chip's CHIP_ID.
func (c *Chip) ID() []byte { return append([]byte(nil), c.id[:]...) }

// DefaultTCB is a plausible current TCB for product p.
func DefaultTCB(p attest.Product) attest.TCB {
	switch p {
	case attest.Genoa:
		return attest.TCB{Bootloader: 9, TEE: 0, SNP: 23, Microcode: 84}
	case attest.Turin:
		return attest.TCB{FMC: 1, Bootloader: 1, TEE: 1, SNP: 4, Microcode: 72}
	}
	return attest.TCB{Bootloader: 4, TEE: 0, SNP: 23, Microcode: 213}
}

// VCEKCert is the chip's VCEK certificate (DER) at TCB t.
func (c *Chip) VCEKCert(t attest.TCB) ([]byte, error) {
	k, err := c.vcek(t.Encode(c.product))
	if err != nil {
		return nil, err
	}
	return k.cert.Raw, nil
}

func (c *Chip) vcek(raw uint64) (*signingKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.vceks[raw]; k != nil {
		return k, nil
	}
	key, err := deriveP384(fmt.Sprintf("%s/VCEK/%s/%s/%x", Seed, c.product, c.seed, raw))
	if err != nil {
		return nil, err
	}
	cert, err := c.root.endorsementCert(c.product, key, raw, c.id[:])
	if err != nil {
		return nil, err
	}
	k := &signingKey{key: key, cert: cert}
	c.vceks[raw] = k
	return k, nil
}

// CertMode says how Evidence carries certificates.
type CertMode int

// Certificate modes.
const (
	// CertTable puts ARK, ASK and VCEK (or VLEK) in the extended report's
	// certificate table, as a host does; a VLEK's ASVK goes in Evidence.ASVK.
	CertTable CertMode = iota
	// CertFields puts them in the separate DER fields.
	CertFields
	// NoCerts leaves them out (the console's certificate cache must have them).
	NoCerts
)

// ReportOptions choose the fields of a simulated report. Zero values give a
// routine, well-behaved guest.
type ReportOptions struct {
	ReportData  [64]byte
	Measurement []byte // 48 bytes; nil means a fixed demo measurement
	HostData    []byte // 32 bytes
	FamilyID    []byte // 16 bytes
	ImageID     []byte // 16 bytes
	IDKeyDigest []byte // 48 bytes
	// AuthorKeyDigest (48 bytes) also sets AUTHOR_KEY_EN.
	AuthorKeyDigest []byte
	ReportID        []byte // 32 bytes; nil derives one from the measurement
	// Policy is the raw guest policy; zero means attest.PolicyBits(false,
	// false, false, false) (no debug, no migration agent, no SMT).
	Policy   uint64
	VMPL     uint32
	GuestSVN uint32
	// TCB is the REPORTED_TCB, and the TCB of the signing certificate; zero
	// means DefaultTCB. CurrentTCB, CommittedTCB and LaunchTCB default to it.
	TCB, CurrentTCB, CommittedTCB, LaunchTCB *attest.TCB
	// VLEK signs with the simulated cloud provider's VLEK instead of the VCEK.
	VLEK bool
	// MaskChipID zeroes CHIP_ID and sets MASK_CHIP_ID, as some hosts do.
	MaskChipID bool
	// ChipID (64 bytes) overrides CHIP_ID while the chip's own VCEK still
	// signs: a host lying about the chip, for negative tests.
	ChipID       []byte
	PlatformInfo uint64
	Certs        CertMode
}

// DemoMeasurement is the measurement used when ReportOptions.Measurement is nil.
var DemoMeasurement = func() []byte {
	h := sha512.Sum384([]byte(Seed + "/demo launch measurement"))
	return h[:]
}()

func fixed(b []byte, n int, name string) ([]byte, error) {
	if b == nil {
		return make([]byte, n), nil
	}
	if len(b) != n {
		return nil, fmt.Errorf("%s is %d bytes, want %d", name, len(b), n)
	}
	return b, nil
}

// Report makes a signed raw report and its certificate table.
func (c *Chip) Report(o ReportOptions) (report, certTable []byte, err error) {
	ev, err := c.Evidence(o)
	if err != nil {
		return nil, nil, err
	}
	if o.Certs != CertTable {
		return ev.Report, nil, nil
	}
	return ev.Report, ev.CertTable, nil
}

// Evidence makes a signed report with certificates as o.Certs says.
func (c *Chip) Evidence(o ReportOptions) (*attest.Evidence, error) {
	p := c.product
	tcb := DefaultTCB(p)
	if o.TCB != nil {
		tcb = *o.TCB
	}
	raw := tcb.Encode(p)
	pick := func(t *attest.TCB) uint64 {
		if t == nil {
			return raw
		}
		return t.Encode(p)
	}
	r := &spb.Report{
		Version:       3,
		GuestSvn:      o.GuestSVN,
		Policy:        o.Policy,
		Vmpl:          o.VMPL,
		SignatureAlgo: abi.SignEcdsaP384Sha384,
		CurrentTcb:    pick(o.CurrentTCB),
		ReportedTcb:   raw,
		CommittedTcb:  pick(o.CommittedTCB),
		LaunchTcb:     pick(o.LaunchTCB),
		PlatformInfo:  o.PlatformInfo,
		ReportData:    append([]byte(nil), o.ReportData[:]...),
		CurrentMajor:  1, CurrentMinor: 55, CurrentBuild: 21,
		CommittedMajor: 1, CommittedMinor: 55, CommittedBuild: 21,
		Cpuid1EaxFms: cpuid(p),
		Signature:    make([]byte, abi.SignatureSize),
	}
	if r.Policy == 0 {
		r.Policy = attest.PolicyBits(false, false, false, false)
	}
	var err error
	m := o.Measurement
	if m == nil {
		m = DemoMeasurement
	}
	if r.Measurement, err = fixed(m, 48, "measurement"); err != nil {
		return nil, err
	}
	if r.HostData, err = fixed(o.HostData, 32, "host data"); err != nil {
		return nil, err
	}
	if r.FamilyId, err = fixed(o.FamilyID, 16, "family ID"); err != nil {
		return nil, err
	}
	if r.ImageId, err = fixed(o.ImageID, 16, "image ID"); err != nil {
		return nil, err
	}
	if r.IdKeyDigest, err = fixed(o.IDKeyDigest, 48, "ID key digest"); err != nil {
		return nil, err
	}
	if r.AuthorKeyDigest, err = fixed(o.AuthorKeyDigest, 48, "author key digest"); err != nil {
		return nil, err
	}
	rid := o.ReportID
	if rid == nil {
		h := sha512.Sum512_256(append([]byte(Seed+"/report id/"+c.seed), r.Measurement...))
		rid = h[:]
	}
	if r.ReportId, err = fixed(rid, 32, "report ID"); err != nil {
		return nil, err
	}
	r.ReportIdMa = make([]byte, 32)
	for i := range r.ReportIdMa {
		r.ReportIdMa[i] = 0xff
	}
	r.ChipId = c.ID()
	if o.MaskChipID {
		r.ChipId = make([]byte, 64)
	}
	if o.ChipID != nil {
		if r.ChipId, err = fixed(o.ChipID, 64, "chip ID"); err != nil {
			return nil, err
		}
	}
	info := abi.SignerInfo{MaskChipKey: o.MaskChipID, AuthorKeyEn: o.AuthorKeyDigest != nil}
	var k *signingKey
	if o.VLEK {
		info.SigningKey = abi.VlekReportSigner
		k, err = c.root.vlek(p, raw)
	} else {
		k, err = c.vcek(raw)
	}
	if err != nil {
		return nil, err
	}
	r.SignerInfo = abi.ComposeSignerInfo(info)
	b, err := abi.ReportToAbiBytes(r)
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	if err := signReport(b, k.key); err != nil {
		return nil, err
	}

	ev := &attest.Evidence{Report: b}
	pr := c.root.products[p]
	chain := &spb.CertificateChain{ArkCert: pr.ark.Raw, AskCert: pr.ask.Raw}
	if o.VLEK {
		chain.VlekCert = k.cert.Raw
	} else {
		chain.VcekCert = k.cert.Raw
	}
	switch o.Certs {
	case CertTable:
		ev.CertTable = abi.CertsFromProto(chain).Marshal()
		if o.VLEK {
			ev.ASVK = pr.asvk.Raw
		}
	case CertFields:
		ev.ARK, ev.ASK, ev.VCEK, ev.VLEK = chain.ArkCert, chain.AskCert, chain.VcekCert, chain.VlekCert
		if o.VLEK {
			ev.ASVK = pr.asvk.Raw
		}
	}
	return ev, nil
}

// signReport signs the report's signed component with ECDSA P-384 SHA-384
// and stores r and s in AMD's little-endian layout.
func signReport(report []byte, key *ecdsa.PrivateKey) error {
	h := sha512.Sum384(abi.SignedComponent(report))
	rr, ss, err := ecdsa.Sign(nil, key, h[:])
	if err != nil {
		return fmt.Errorf("sign report: %w", err)
	}
	return abi.SetSignature(rr, ss, report)
}

// cpuid is the CPUID_1_EAX family/model/stepping a version 3 report carries.
func cpuid(p attest.Product) uint32 {
	switch p {
	case attest.Genoa:
		return abi.FmsToCpuid1Eax(0x19, 0x11, 1)
	case attest.Turin:
		return abi.FmsToCpuid1Eax(0x1A, 0x02, 0)
	}
	return abi.FmsToCpuid1Eax(0x19, 0x01, 1)
}
