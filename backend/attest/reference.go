package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// ReferenceValues are what an officer approved for one image. A zero field
// means "not checked", except the policy fields, whose zero values are the
// strict choice (no debug, no migration agent, no SMT).
type ReferenceValues struct {
	// Measurements are the approved launch measurements (48 bytes each). At
	// least one is required.
	Measurements []Hex `json:"measurements"`
	// MinimumTCB is the per-component minimum of the REPORTED_TCB.
	MinimumTCB TCBMinimum `json:"minimum_tcb"`
	// Product restricts the evidence to one generation; empty allows all.
	Product Product `json:"product,omitempty"`
	// AllowMigrationAgent and AllowSMT permit those guest policy bits. Debug
	// is never permitted.
	AllowMigrationAgent bool `json:"allow_migration_agent"`
	AllowSMT            bool `json:"allow_smt"`
	// RequireSingleSocket requires the single-socket policy bit.
	RequireSingleSocket bool `json:"require_single_socket"`
	// AllowedVMPLs lists acceptable VMPLs; empty means VMPL 0 only.
	AllowedVMPLs []uint32 `json:"allowed_vmpls,omitempty"`
	// HostData, FamilyID and ImageID must equal the report's when set.
	HostData Hex `json:"host_data,omitempty"`
	FamilyID Hex `json:"family_id,omitempty"`
	ImageID  Hex `json:"image_id,omitempty"`
	// IDKeyDigests and AuthorKeyDigests are the approved ID-block keys (SHA-384
	// of the key in SEV-SNP API format); when set the report must carry one.
	IDKeyDigests     []Hex `json:"id_key_digests,omitempty"`
	AuthorKeyDigests []Hex `json:"author_key_digests,omitempty"`
	// MinimumGuestSVN is the minimum GUEST_SVN.
	MinimumGuestSVN uint32 `json:"minimum_guest_svn,omitempty"`
	// AllowedChipIDs restricts the evidence to these chips (VCEK hardware
	// IDs; a VLEK names no chip and is refused); empty allows any.
	AllowedChipIDs []Hex `json:"allowed_chip_ids,omitempty"`
	// TPM holds the vTPM requirements; nil means a vTPM is not required.
	TPM *TPMReference `json:"tpm,omitempty"`
}

// TCBMinimum is the minimum security patch level per component. Zero means no
// minimum for that component.
type TCBMinimum struct {
	Bootloader uint8 `json:"bootloader"`
	TEE        uint8 `json:"tee"`
	SNP        uint8 `json:"snp"`
	Microcode  uint8 `json:"microcode"`
	FMC        uint8 `json:"fmc,omitempty"`
}

// TPMReference holds what the vTPM must show.
type TPMReference struct {
	// Required refuses evidence without a vTPM attestation.
	Required bool `json:"required"`
	// RequireSecureBoot refuses a machine state with Secure Boot off.
	RequireSecureBoot bool `json:"require_secure_boot"`
	// PCRs pins PCR values (index -> digest in the verified bank).
	PCRs map[uint32]Hex `json:"pcrs,omitempty"`
}

// Sizes of report fields the reference values compare.
const (
	MeasurementSize = 48
	HostDataSize    = 32
	IDSize          = 16
	KeyDigestSize   = 48
	ChipIDSize      = 64
	ReportDataSize  = 64
)

// Validate checks lengths and the presence of at least one measurement.
func (r *ReferenceValues) Validate() error {
	if r == nil {
		return fmt.Errorf("no reference values")
	}
	if len(r.Measurements) == 0 {
		return fmt.Errorf("reference values need at least one approved measurement")
	}
	check := func(name string, b []byte, n int) error {
		if len(b) != 0 && len(b) != n {
			return fmt.Errorf("%s is %d bytes, want %d", name, len(b), n)
		}
		return nil
	}
	for i, m := range r.Measurements {
		if len(m) != MeasurementSize {
			return fmt.Errorf("measurement %d is %d bytes, want %d", i+1, len(m), MeasurementSize)
		}
	}
	if r.Product != Unknown {
		if _, err := ParseProduct(string(r.Product)); err != nil {
			return err
		}
	}
	for _, v := range r.AllowedVMPLs {
		if v > 3 {
			return fmt.Errorf("VMPL %d is out of range 0-3", v)
		}
	}
	if err := check("host data", r.HostData, HostDataSize); err != nil {
		return err
	}
	if err := check("family ID", r.FamilyID, IDSize); err != nil {
		return err
	}
	if err := check("image ID", r.ImageID, IDSize); err != nil {
		return err
	}
	for _, d := range r.IDKeyDigests {
		if len(d) != KeyDigestSize {
			return fmt.Errorf("ID key digest is %d bytes, want %d", len(d), KeyDigestSize)
		}
	}
	for _, d := range r.AuthorKeyDigests {
		if len(d) != KeyDigestSize {
			return fmt.Errorf("author key digest is %d bytes, want %d", len(d), KeyDigestSize)
		}
	}
	for _, c := range r.AllowedChipIDs {
		if len(c) != ChipIDSize {
			return fmt.Errorf("chip ID is %d bytes, want %d", len(c), ChipIDSize)
		}
	}
	if r.TPM != nil {
		for i, d := range r.TPM.PCRs {
			if i > 23 {
				return fmt.Errorf("PCR %d is out of range 0-23", i)
			}
			if n := len(d); n != 20 && n != 32 && n != 48 && n != 64 {
				return fmt.Errorf("PCR %d digest is %d bytes", i, n)
			}
		}
	}
	return nil
}

// ParseReferenceValues decodes and validates the JSON form, refusing unknown fields.
func ParseReferenceValues(data []byte) (*ReferenceValues, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r ReferenceValues
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	return &r, nil
}

// canonical returns r with sorted sets, so equal values encode equally.
func (r ReferenceValues) canonical() ReferenceValues {
	sortHex := func(in []Hex) []Hex {
		out := append([]Hex(nil), in...)
		sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
		return out
	}
	r.Measurements = sortHex(r.Measurements)
	r.IDKeyDigests = sortHex(r.IDKeyDigests)
	r.AuthorKeyDigests = sortHex(r.AuthorKeyDigests)
	r.AllowedChipIDs = sortHex(r.AllowedChipIDs)
	r.AllowedVMPLs = append([]uint32(nil), r.AllowedVMPLs...)
	sort.Slice(r.AllowedVMPLs, func(i, j int) bool { return r.AllowedVMPLs[i] < r.AllowedVMPLs[j] })
	return r
}

func containsHex(set []Hex, b []byte) bool {
	for _, s := range set {
		if bytes.Equal(s, b) {
			return true
		}
	}
	return false
}

// ReferenceFromClaims proposes reference values that exactly admit the
// guest that made c: its measurement, its reported TCB as the minimum, its
// product and VMPL, its host data, family and image IDs and ID-block keys,
// and the SMT and migration agent bits only if its policy sets them. An
// officer approving a first boot starts from this and edits it; debug is
// never proposed, so a debug guest still fails the result.
func ReferenceFromClaims(c *Claims) ReferenceValues {
	nonZero := func(b Hex) Hex {
		if allZero(b) {
			return nil
		}
		return append(Hex(nil), b...)
	}
	r := ReferenceValues{
		Measurements: []Hex{append(Hex(nil), c.Measurement...)},
		MinimumTCB: TCBMinimum{Bootloader: c.ReportedTCB.Bootloader, TEE: c.ReportedTCB.TEE, SNP: c.ReportedTCB.SNP,
			Microcode: c.ReportedTCB.Microcode, FMC: c.ReportedTCB.FMC},
		Product:             c.Product,
		AllowMigrationAgent: c.Policy.MigrationAgent,
		AllowSMT:            c.Policy.SMT,
		AllowedVMPLs:        []uint32{c.VMPL},
		HostData:            nonZero(c.HostData),
		FamilyID:            nonZero(c.FamilyID),
		ImageID:             nonZero(c.ImageID),
		MinimumGuestSVN:     c.GuestSVN,
	}
	if d := nonZero(c.IDKeyDigest); d != nil {
		r.IDKeyDigests = []Hex{d}
	}
	if d := nonZero(c.AuthorKeyDigest); d != nil && c.AuthorKeyEn {
		r.AuthorKeyDigests = []Hex{d}
	}
	return r
}
