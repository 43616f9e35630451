package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-sev-guest/abi"
)

// Size limits for evidence parts. Anything larger is refused before it is parsed.
const (
	// ReportSize is the size of a raw SEV-SNP ATTESTATION_REPORT.
	ReportSize = abi.ReportSize
	// MaxCertSize bounds one DER or PEM certificate.
	MaxCertSize = 16 << 10
	// MaxCertTableSize bounds the extended report's certificate table.
	MaxCertTableSize = 64 << 10
	// MaxTPMSize bounds a vTPM attestation (quotes plus event log).
	MaxTPMSize = 256 << 10
	// MaxEvidenceJSON bounds the JSON encoding of a whole Evidence.
	MaxEvidenceJSON = 1 << 20
)

// ErrMalformed is wrapped by every error about evidence that cannot be parsed.
var ErrMalformed = errors.New("malformed evidence")

// Evidence is what a guest presents: its signed SEV-SNP report, the AMD
// certificates that vouch for the signing key, and optionally a vTPM
// attestation. Its JSON encoding is stable (byte fields are standard base64);
// the agent sends it in POST /v1/release.
//
// Certificates may come as the extended report's certificate table, as
// separate DER fields, or both; a certificate given both ways must agree.
// Missing certificates are looked up in the console's certificate cache.
type Evidence struct {
	// Report is the raw 1184-byte ATTESTATION_REPORT.
	Report []byte `json:"report"`
	// CertTable is the GUID-indexed certificate table of an extended report
	// (SNP_GET_EXT_REPORT, or the auxblob of configfs-tsm).
	CertTable []byte `json:"cert_table,omitempty"`
	// VCEK, VLEK, ASK, ASVK and ARK are DER certificates.
	VCEK []byte `json:"vcek,omitempty"`
	VLEK []byte `json:"vlek,omitempty"`
	ASK  []byte `json:"ask,omitempty"`
	ASVK []byte `json:"asvk,omitempty"`
	ARK  []byte `json:"ark,omitempty"`
	// TPM is a go-tpm-tools attest.Attestation in protobuf wire format.
	TPM []byte `json:"tpm,omitempty"`
}

// evidenceHashDomain starts the canonical encoding hashed by Evidence.Hash.
const evidenceHashDomain = "keyholder evidence v1\x00"

// Hash is SHA-256 over the canonical encoding of the evidence, which approvals
// and audit entries are bound to. The encoding is
//
//	"keyholder evidence v1" 0x00
//	then for each field in the order report, cert_table, vcek, vlek, ask,
//	asvk, ark, tpm: one tag byte (1..8), a big-endian uint32 length, the bytes.
//
// Empty fields are encoded with length 0, so the hash does not depend on JSON
// whitespace, field order or base64 padding.
func (ev *Evidence) Hash() [32]byte {
	h := sha256.New()
	h.Write([]byte(evidenceHashDomain))
	for i, f := range [][]byte{ev.Report, ev.CertTable, ev.VCEK, ev.VLEK, ev.ASK, ev.ASVK, ev.ARK, ev.TPM} {
		var hdr [5]byte
		hdr[0] = byte(i + 1)
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(f)))
		h.Write(hdr[:])
		h.Write(f)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// HashHex is Hash in lower-case hex, as approvals and the audit log store it.
func (ev *Evidence) HashHex() string {
	s := ev.Hash()
	return hex.EncodeToString(s[:])
}

// AKDigest is SHA-256 of the vTPM attestation key's public area (TPMT_PUBLIC)
// that the evidence carries, or nil without a vTPM attestation or when it
// cannot be parsed. A protocol that trusts the vTPM through the SNP report
// hashes this digest into REPORT_DATA and passes it as Expectation.AKDigest.
func (ev *Evidence) AKDigest() []byte {
	if len(ev.TPM) == 0 {
		return nil
	}
	att, err := parseTPMAttestation(ev.TPM)
	if err != nil || len(att.GetAkPub()) == 0 {
		return nil
	}
	d := sha256.Sum256(att.GetAkPub())
	return d[:]
}

// Check verifies sizes and shapes without any cryptography: the report has
// the right size and parses, every certificate parses, the certificate table
// parses and agrees with the separate fields. Verify calls it first.
func (ev *Evidence) Check() error {
	if ev == nil {
		return fmt.Errorf("%w: no evidence", ErrMalformed)
	}
	if len(ev.Report) != ReportSize {
		return fmt.Errorf("%w: report is %d bytes, an SEV-SNP report is %d", ErrMalformed, len(ev.Report), ReportSize)
	}
	if _, err := parseReport(ev.Report); err != nil {
		return err
	}
	if len(ev.CertTable) > MaxCertTableSize {
		return fmt.Errorf("%w: certificate table is %d bytes, the limit is %d", ErrMalformed, len(ev.CertTable), MaxCertTableSize)
	}
	if len(ev.TPM) > MaxTPMSize {
		return fmt.Errorf("%w: vTPM attestation is %d bytes, the limit is %d", ErrMalformed, len(ev.TPM), MaxTPMSize)
	}
	certs, err := ev.certs()
	if err != nil {
		return err
	}
	if err := certs.parseAll(); err != nil {
		return err
	}
	if len(ev.TPM) > 0 {
		if _, err := parseTPMAttestation(ev.TPM); err != nil {
			return err
		}
	}
	return nil
}

// evidenceCerts are the DER certificates of an Evidence after merging the
// certificate table with the separate fields.
type evidenceCerts struct {
	vcek, vlek, ask, asvk, ark []byte
}

func (ev *Evidence) certs() (*evidenceCerts, error) {
	c := &evidenceCerts{vcek: ev.VCEK, vlek: ev.VLEK, ask: ev.ASK, asvk: ev.ASVK, ark: ev.ARK}
	if len(ev.CertTable) > MaxCertTableSize {
		return nil, fmt.Errorf("%w: certificate table is %d bytes, the limit is %d", ErrMalformed, len(ev.CertTable), MaxCertTableSize)
	}
	if len(ev.CertTable) > 0 {
		if err := checkCertTableRanges(ev.CertTable); err != nil {
			return nil, fmt.Errorf("%w: certificate table: %v", ErrMalformed, err)
		}
		var t abi.CertTable
		if err := t.Unmarshal(ev.CertTable); err != nil {
			return nil, fmt.Errorf("%w: certificate table: %v", ErrMalformed, err)
		}
		for _, e := range []struct {
			guid string
			dst  *[]byte
			name string
		}{
			{abi.VcekGUID, &c.vcek, "VCEK"},
			{abi.VlekGUID, &c.vlek, "VLEK"},
			{abi.AskGUID, &c.ask, "ASK"},
			{abi.ArkGUID, &c.ark, "ARK"},
			{abi.AsvkGUID, &c.asvk, "ASVK"},
		} {
			blob, err := t.GetByGUIDString(e.guid)
			if err != nil || len(blob) == 0 {
				continue
			}
			blob = trimDER(blob)
			if len(*e.dst) > 0 && !bytes.Equal(*e.dst, blob) {
				return nil, fmt.Errorf("%w: the %s in the certificate table differs from the separate %s", ErrMalformed, e.name, e.name)
			}
			*e.dst = blob
		}
	}
	for _, e := range []struct {
		der  []byte
		name string
	}{{c.vcek, "VCEK"}, {c.vlek, "VLEK"}, {c.ask, "ASK"}, {c.asvk, "ASVK"}, {c.ark, "ARK"}} {
		if len(e.der) == 0 {
			continue
		}
		if len(e.der) > MaxCertSize {
			return nil, fmt.Errorf("%w: %s certificate is %d bytes, the limit is %d", ErrMalformed, e.name, len(e.der), MaxCertSize)
		}
	}
	return c, nil
}

// checkCertTableRanges refuses a certificate table whose entry reaches
// past the table. abi.CertTable.Unmarshal adds offset and length in 32
// bits: a sum that wraps around passes its check and then panics slicing
// the table, or allocates up to 4 GiB for the entry first.
func checkCertTableRanges(table []byte) error {
	entries, err := abi.ParseSnpCertTableHeader(table)
	if err != nil {
		return err
	}
	for i, e := range entries {
		if uint64(e.Offset)+uint64(e.Length) > uint64(len(table)) {
			return fmt.Errorf("entry %d (offset %d, length %d) reaches past the table's %d bytes", i, e.Offset, e.Length, len(table))
		}
	}
	return nil
}

// parseAll parses every certificate. Verify does not need it (intermediates
// are compared byte for byte with the trusted ones, the signing certificate
// is parsed on a cold chain), but Check reports bad certificates early.
func (c *evidenceCerts) parseAll() error {
	for _, e := range []struct {
		der  []byte
		name string
	}{{c.vcek, "VCEK"}, {c.vlek, "VLEK"}, {c.ask, "ASK"}, {c.asvk, "ASVK"}, {c.ark, "ARK"}} {
		if len(e.der) == 0 {
			continue
		}
		if _, err := x509.ParseCertificate(e.der); err != nil {
			return fmt.Errorf("%w: %s certificate: %v", ErrMalformed, e.name, err)
		}
	}
	return nil
}

// trimDER cuts a certificate table entry to the length its outer DER
// SEQUENCE declares: hosts pad entries with zeros.
func trimDER(b []byte) []byte {
	if len(b) < 4 || b[0] != 0x30 {
		return b
	}
	var n, hdr int
	switch l := b[1]; {
	case l < 0x80:
		n, hdr = int(l), 2
	case l == 0x81:
		n, hdr = int(b[2]), 3
	case l == 0x82:
		n, hdr = int(b[2])<<8|int(b[3]), 4
	default:
		return b
	}
	if hdr+n <= len(b) {
		return b[:hdr+n]
	}
	return b
}

// EvidenceFromQuote splits a raw quote as go-sev-guest's QuoteProvider
// returns it (configfs-tsm or the ioctl device): the report, then the
// certificate table.
func EvidenceFromQuote(quote []byte) (*Evidence, error) {
	if len(quote) < ReportSize {
		return nil, fmt.Errorf("%w: quote is %d bytes, shorter than a report", ErrMalformed, len(quote))
	}
	ev := &Evidence{Report: append([]byte(nil), quote[:ReportSize]...)}
	if len(quote) > ReportSize {
		ev.CertTable = append([]byte(nil), quote[ReportSize:]...)
	}
	if err := ev.Check(); err != nil {
		return nil, err
	}
	return ev, nil
}

// ParseEvidence decodes the JSON encoding of an Evidence, refusing unknown
// fields, trailing data and anything over MaxEvidenceJSON, and checks it.
func ParseEvidence(data []byte) (*Evidence, error) {
	if len(data) > MaxEvidenceJSON {
		return nil, fmt.Errorf("%w: evidence is %d bytes, the limit is %d", ErrMalformed, len(data), MaxEvidenceJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ev Evidence
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the evidence object", ErrMalformed)
	}
	if err := ev.Check(); err != nil {
		return nil, err
	}
	return &ev, nil
}
