package attest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// Product is an AMD EPYC generation with SEV-SNP.
type Product string

// The products Keyholder verifies.
const (
	Milan   Product = "Milan"
	Genoa   Product = "Genoa"
	Turin   Product = "Turin"
	Unknown Product = ""
)

// Products lists the supported products in release order.
var Products = []Product{Milan, Genoa, Turin}

// ParseProduct reads a product name, ignoring case ("milan", "Genoa").
func ParseProduct(s string) (Product, error) {
	for _, p := range Products {
		if strings.EqualFold(s, string(p)) {
			return p, nil
		}
	}
	return Unknown, fmt.Errorf("unknown product %q (want Milan, Genoa or Turin)", s)
}

// Signer is the key that signed a report.
type Signer string

// Report signers.
const (
	// VCEK is the chip-unique Versioned Chip Endorsement Key.
	VCEK Signer = "VCEK"
	// VLEK is the cloud provider's Versioned Loaded Endorsement Key.
	VLEK Signer = "VLEK"
)

// Hex is a byte string that marshals as lower-case hex.
type Hex []byte

// MarshalText implements encoding.TextMarshaler.
func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hex) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("bad hex: %w", err)
	}
	*h = d
	return nil
}

// String is the lower-case hex form.
func (h Hex) String() string { return hex.EncodeToString(h) }

// TCB is a TCB_VERSION split into its security patch levels. Raw is the
// 64-bit value as the report carries it.
//
// Milan and Genoa place bootloader, TEE, SNP firmware and microcode at bytes
// 0, 1, 6 and 7; Turin adds the FMC at byte 0 and moves bootloader, TEE and SNP
// to bytes 1, 2 and 3 (AMD SEV-SNP ABI, TCB_VERSION).
type TCB struct {
	Bootloader uint8  `json:"bootloader"`
	TEE        uint8  `json:"tee"`
	SNP        uint8  `json:"snp"`
	Microcode  uint8  `json:"microcode"`
	FMC        uint8  `json:"fmc,omitempty"` // Turin only
	Raw        uint64 `json:"raw"`
}

// DecodeTCB splits a raw TCB_VERSION for product p.
func DecodeTCB(p Product, raw uint64) TCB {
	b := func(i uint) uint8 { return uint8(raw >> (8 * i)) }
	if p == Turin {
		return TCB{FMC: b(0), Bootloader: b(1), TEE: b(2), SNP: b(3), Microcode: b(7), Raw: raw}
	}
	return TCB{Bootloader: b(0), TEE: b(1), SNP: b(6), Microcode: b(7), Raw: raw}
}

// Encode composes the raw TCB_VERSION of t for product p (Raw is ignored).
func (t TCB) Encode(p Product) uint64 {
	if p == Turin {
		return uint64(t.FMC) | uint64(t.Bootloader)<<8 | uint64(t.TEE)<<16 | uint64(t.SNP)<<24 | uint64(t.Microcode)<<56
	}
	return uint64(t.Bootloader) | uint64(t.TEE)<<8 | uint64(t.SNP)<<48 | uint64(t.Microcode)<<56
}

// String is "bl=3 tee=0 snp=8 ucode=115".
func (t TCB) String() string {
	s := fmt.Sprintf("bl=%d tee=%d snp=%d ucode=%d", t.Bootloader, t.TEE, t.SNP, t.Microcode)
	if t.FMC != 0 {
		s = fmt.Sprintf("fmc=%d ", t.FMC) + s
	}
	return s
}

// Policy is the guest policy a VM was launched with.
type Policy struct {
	Debug          bool   `json:"debug"`
	MigrationAgent bool   `json:"migration_agent"`
	SMT            bool   `json:"smt"`
	SingleSocket   bool   `json:"single_socket"`
	ABIMajor       uint8  `json:"abi_major"`
	ABIMinor       uint8  `json:"abi_minor"`
	Raw            uint64 `json:"raw"`
}

// PolicyFromRaw decodes a guest policy. Invalid reserved bits are left for the
// report parser to refuse.
func PolicyFromRaw(raw uint64) Policy {
	p, _ := abi.ParseSnpPolicy(raw)
	return Policy{Debug: p.Debug, MigrationAgent: p.MigrateMA, SMT: p.SMT, SingleSocket: p.SingleSocket,
		ABIMajor: p.ABIMajor, ABIMinor: p.ABIMinor, Raw: raw}
}

// PolicyBits composes a valid guest policy (reserved bit 17 set, ABI 0.0).
func PolicyBits(debug, migrationAgent, smt, singleSocket bool) uint64 {
	return abi.SnpPolicyToBytes(abi.SnpPolicy{Debug: debug, MigrateMA: migrationAgent, SMT: smt, SingleSocket: singleSocket})
}

// PlatformInfo is the host platform state the report states.
type PlatformInfo struct {
	SMTEnabled  bool   `json:"smt_enabled"`
	TSMEEnabled bool   `json:"tsme_enabled"`
	ECCEnabled  bool   `json:"ecc_enabled"`
	Raw         uint64 `json:"raw"`
}

// Claims are the decoded fields of a report. They are only trustworthy when
// the Verdict that carries them is Verified.
type Claims struct {
	Version         uint32       `json:"version"`
	Product         Product      `json:"product"`
	Signer          Signer       `json:"signer"`
	ChipID          Hex          `json:"chip_id"`
	ChipIDMasked    bool         `json:"chip_id_masked"`
	Measurement     Hex          `json:"measurement"`
	HostData        Hex          `json:"host_data"`
	ReportData      Hex          `json:"report_data"`
	IDKeyDigest     Hex          `json:"id_key_digest"`
	AuthorKeyDigest Hex          `json:"author_key_digest"`
	AuthorKeyEn     bool         `json:"author_key_en"`
	FamilyID        Hex          `json:"family_id"`
	ImageID         Hex          `json:"image_id"`
	ReportID        Hex          `json:"report_id"`
	ReportIDMA      Hex          `json:"report_id_ma"`
	GuestSVN        uint32       `json:"guest_svn"`
	VMPL            uint32       `json:"vmpl"`
	Policy          Policy       `json:"policy"`
	PlatformInfo    PlatformInfo `json:"platform_info"`
	CurrentTCB      TCB          `json:"current_tcb"`
	ReportedTCB     TCB          `json:"reported_tcb"`
	CommittedTCB    TCB          `json:"committed_tcb"`
	LaunchTCB       TCB          `json:"launch_tcb"`
	FirmwareVersion string       `json:"firmware_version"` // current major.minor (build)
}

// parseReport checks and decodes a raw report with go-sev-guest's abi package.
func parseReport(raw []byte) (*spb.Report, error) {
	if len(raw) != ReportSize {
		return nil, fmt.Errorf("%w: report is %d bytes, an SEV-SNP report is %d", ErrMalformed, len(raw), ReportSize)
	}
	if err := abi.ValidateReportFormat(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	r, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.GetSignatureAlgo() != abi.SignEcdsaP384Sha384 {
		return nil, fmt.Errorf("%w: signature algorithm %d is not ECDSA P-384 with SHA-384", ErrMalformed, r.GetSignatureAlgo())
	}
	info, _ := abi.ParseSignerInfo(r.GetSignerInfo())
	if info.SigningKey != abi.VcekReportSigner && info.SigningKey != abi.VlekReportSigner {
		return nil, fmt.Errorf("%w: report signing key is %v, want VCEK or VLEK", ErrMalformed, info.SigningKey)
	}
	return r, nil
}

// productOfReport reads the product from a version 3+ report's CPUID fields.
func productOfReport(r *spb.Report) Product {
	if fms := r.GetCpuid1EaxFms(); fms != 0 {
		p := abi.SevProductFromCpuid1Eax(fms)
		switch p.GetName() {
		case spb.SevProduct_SEV_PRODUCT_MILAN:
			return Milan
		case spb.SevProduct_SEV_PRODUCT_GENOA:
			return Genoa
		case spb.SevProduct_SEV_PRODUCT_TURIN:
			return Turin
		}
	}
	return Unknown
}

func claimsOf(r *spb.Report, p Product) *Claims {
	info, _ := abi.ParseSignerInfo(r.GetSignerInfo())
	signer := VCEK
	if info.SigningKey == abi.VlekReportSigner {
		signer = VLEK
	}
	pi := r.GetPlatformInfo()
	return &Claims{
		Version:         r.GetVersion(),
		Product:         p,
		Signer:          signer,
		ChipID:          r.GetChipId(),
		ChipIDMasked:    info.MaskChipKey,
		Measurement:     r.GetMeasurement(),
		HostData:        r.GetHostData(),
		ReportData:      r.GetReportData(),
		IDKeyDigest:     r.GetIdKeyDigest(),
		AuthorKeyDigest: r.GetAuthorKeyDigest(),
		AuthorKeyEn:     info.AuthorKeyEn,
		FamilyID:        r.GetFamilyId(),
		ImageID:         r.GetImageId(),
		ReportID:        r.GetReportId(),
		ReportIDMA:      r.GetReportIdMa(),
		GuestSVN:        r.GetGuestSvn(),
		VMPL:            r.GetVmpl(),
		Policy:          PolicyFromRaw(r.GetPolicy()),
		PlatformInfo:    PlatformInfo{SMTEnabled: pi&1 != 0, TSMEEnabled: pi&2 != 0, ECCEnabled: pi&4 != 0, Raw: pi},
		CurrentTCB:      DecodeTCB(p, r.GetCurrentTcb()),
		ReportedTCB:     DecodeTCB(p, r.GetReportedTcb()),
		CommittedTCB:    DecodeTCB(p, r.GetCommittedTcb()),
		LaunchTCB:       DecodeTCB(p, r.GetLaunchTcb()),
		FirmwareVersion: fmt.Sprintf("%d.%d (build %d)", r.GetCurrentMajor(), r.GetCurrentMinor(), r.GetCurrentBuild()),
	}
}

// ReportClaims decodes a raw report without verifying anything, for display.
func ReportClaims(raw []byte) (*Claims, error) {
	r, err := parseReport(raw)
	if err != nil {
		return nil, err
	}
	return claimsOf(r, productOfReport(r)), nil
}

// le64 reads a little-endian uint64 at off.
func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off : off+8]) }
