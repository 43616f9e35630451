package wire

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Domain separates Keyholder's release transcript from every other use of
// REPORT_DATA.
const Domain = "keyholder-release-v1"

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

// Transcript returns the REPORT_DATA a guest must put into its SNP report to
// ask for volumeID's secret sealed to hpkePublicKey under nonce (see the
// package documentation for the encoding). It refuses inputs of the wrong
// length, so a caller cannot bind a truncated key by mistake.
func Transcript(nonce, hpkePublicKey []byte, volumeID string) ([ReportDataSize]byte, error) {
	var out [ReportDataSize]byte
	if len(nonce) != NonceSize {
		return out, fmt.Errorf("transcript: nonce is %d bytes, want %d", len(nonce), NonceSize)
	}
	if len(hpkePublicKey) != PublicKeySize {
		return out, fmt.Errorf("transcript: HPKE public key is %d bytes, want %d", len(hpkePublicKey), PublicKeySize)
	}
	if err := CheckID(volumeID); err != nil {
		return out, fmt.Errorf("transcript: volume ID: %w", err)
	}
	buf := make([]byte, 0, 4*4+len(Domain)+NonceSize+PublicKeySize+len(volumeID))
	buf = appendLP(buf, []byte(Domain))
	buf = appendLP(buf, nonce)
	buf = appendLP(buf, hpkePublicKey)
	buf = appendLP(buf, []byte(volumeID))
	return sha512.Sum512(buf), nil
}

// TranscriptAK is Transcript for a guest that also sends a vTPM
// attestation: a fifth field binds the vTPM attestation key,
//
//	REPORT_DATA = SHA-512( lp("keyholder-release-v1") ‖ lp(nonce) ‖ lp(hpke_public_key) ‖ lp(volume_id) ‖ lp(ak_digest) )
//
// where ak_digest is the SHA-256 of the key's TPMT_PUBLIC (32 bytes), and the
// vTPM quote is made over REPORT_DATA as its nonce. With no AK digest it is
// exactly Transcript.
func TranscriptAK(nonce, hpkePublicKey []byte, volumeID string, akDigest []byte) ([ReportDataSize]byte, error) {
	if akDigest == nil {
		return Transcript(nonce, hpkePublicKey, volumeID)
	}
	var out [ReportDataSize]byte
	if len(akDigest) != sha256.Size {
		return out, fmt.Errorf("transcript: AK digest is %d bytes, want %d", len(akDigest), sha256.Size)
	}
	if _, err := Transcript(nonce, hpkePublicKey, volumeID); err != nil {
		return out, err
	}
	buf := make([]byte, 0, 5*4+len(Domain)+NonceSize+PublicKeySize+len(volumeID)+sha256.Size)
	buf = appendLP(buf, []byte(Domain))
	buf = appendLP(buf, nonce)
	buf = appendLP(buf, hpkePublicKey)
	buf = appendLP(buf, []byte(volumeID))
	buf = appendLP(buf, akDigest)
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
