package wire

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Version is the wire version this package speaks. Version 2 binds the VM
// ID, purpose and generation into REPORT_DATA; version 1 (requests without
// a version field) did not, and is refused with CodeUnsupportedVersion.
const Version = 2

// Domain separates Keyholder's release transcript from every other use of
// REPORT_DATA; it names the wire version.
const Domain = "keyholder-release-v2"

// Lengths of the fixed-size protocol values.
const (
	NonceSize        = 32
	PublicKeySize    = 1216 // ML-KEM-768+X25519 public key, RFC 9180 serialisation
	ReportDataSize   = 64
	MaxIDLen         = 128
	SnpReportSize    = 1184 // an SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI, table 21/23)
	MaxCertTableSize = 16 << 10
	MaxCertSize      = 8 << 10
	MaxTPMSize       = 32 << 10
	MaxGeneration    = 1 << 20
)

// ErrInvalidID means an identifier is empty, too long or has a character
// outside [A-Za-z0-9._:-].
var ErrInvalidID = errors.New("invalid identifier")

// CheckID reports whether s may be a VM, volume or request ID.
func CheckID(s string) error {
	if len(s) == 0 || len(s) > MaxIDLen {
		return fmt.Errorf("%w: length %d, want 1 to %d", ErrInvalidID, len(s), MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return fmt.Errorf("%w: byte %d is %q", ErrInvalidID, i, c)
		}
	}
	return nil
}

// appendLP appends uint32_be(len(b)) ‖ b.
func appendLP(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// Binding is what a release transcript binds into REPORT_DATA: everything
// in a request that the console's decision depends on.
type Binding struct {
	Nonce         []byte
	HPKEPublicKey []byte
	VolumeID      string
	VMID          string
	Purpose       Purpose
	Generation    int // as the request names it; 0: the current one
	// AKDigest is the SHA-256 of the vTPM attestation key's TPMT_PUBLIC,
	// nil without a vTPM attestation.
	AKDigest []byte
}

// Binding returns what req binds, with the vTPM attestation key digest
// akDigest (nil without a vTPM attestation).
func (req *ReleaseRequest) Binding(akDigest []byte) Binding {
	return Binding{Nonce: req.Nonce, HPKEPublicKey: req.HPKEPublicKey, VolumeID: req.VolumeID, VMID: req.VMID,
		Purpose: req.Purpose, Generation: req.Generation, AKDigest: akDigest}
}

// Transcript returns the REPORT_DATA a guest must put into its SNP report
// (wire version 2, see the package documentation for the encoding):
//
//	SHA-512( lp("keyholder-release-v2") ‖ lp(nonce) ‖ lp(hpke_public_key) ‖ lp(volume_id) ‖
//	         lp(vm_id) ‖ lp(purpose) ‖ uint32_be(generation) ‖ lp(ak_digest) )
//
// with ak_digest empty without a vTPM attestation. It refuses inputs of the
// wrong length or shape, so a caller cannot bind a truncated key by mistake.
func Transcript(b Binding) ([ReportDataSize]byte, error) {
	var out [ReportDataSize]byte
	if len(b.Nonce) != NonceSize {
		return out, fmt.Errorf("transcript: nonce is %d bytes, want %d", len(b.Nonce), NonceSize)
	}
	if len(b.HPKEPublicKey) != PublicKeySize {
		return out, fmt.Errorf("transcript: HPKE public key is %d bytes, want %d", len(b.HPKEPublicKey), PublicKeySize)
	}
	if err := CheckID(b.VolumeID); err != nil {
		return out, fmt.Errorf("transcript: volume ID: %w", err)
	}
	if err := CheckID(b.VMID); err != nil {
		return out, fmt.Errorf("transcript: VM ID: %w", err)
	}
	switch b.Purpose {
	case PurposeBoot, PurposeRotate, PurposeHeartbeat:
	default:
		return out, fmt.Errorf("transcript: purpose %q is not boot, rotate or heartbeat", b.Purpose)
	}
	if b.Generation < 0 || b.Generation > MaxGeneration {
		return out, fmt.Errorf("transcript: generation %d out of range", b.Generation)
	}
	if b.AKDigest != nil && len(b.AKDigest) != sha256.Size {
		return out, fmt.Errorf("transcript: AK digest is %d bytes, want %d", len(b.AKDigest), sha256.Size)
	}
	buf := make([]byte, 0, 8*4+len(Domain)+NonceSize+PublicKeySize+len(b.VolumeID)+len(b.VMID)+len(b.Purpose)+len(b.AKDigest))
	buf = appendLP(buf, []byte(Domain))
	buf = appendLP(buf, b.Nonce)
	buf = appendLP(buf, b.HPKEPublicKey)
	buf = appendLP(buf, []byte(b.VolumeID))
	buf = appendLP(buf, []byte(b.VMID))
	buf = appendLP(buf, []byte(b.Purpose))
	buf = binary.BigEndian.AppendUint32(buf, uint32(b.Generation))
	buf = appendLP(buf, b.AKDigest)
	return sha512.Sum512(buf), nil
}

// EvidenceHash is the hex SHA-256 that approvals and audit entries bind to.
// It is the console's canonical evidence hash (backend/attest's
// Evidence.Hash):
//
//	SHA-256( "keyholder evidence v1" 0x00 ‖ for each field in the order report,
//	         cert_table, vcek, vlek, ask, asvk, ark, tpm: tag byte (1..8) ‖ uint32_be(len) ‖ bytes )
func EvidenceHash(ev Evidence) string {
	h := sha256.New()
	h.Write([]byte("keyholder evidence v1\x00"))
	for i, f := range [][]byte{ev.Report, ev.CertTable, ev.VCEK, ev.VLEK, ev.ASK, ev.ASVK, ev.ARK, ev.TPM} {
		var hdr [5]byte
		hdr[0] = byte(i + 1)
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(f)))
		h.Write(hdr[:])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}
