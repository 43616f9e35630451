package attest

import (
	"fmt"
	"strings"
)

// Code is a stable, machine-readable reason for refusing (or qualifying) a
// verification. Codes never change meaning; new ones may be added.
type Code string

// Reasons for refusal. Every refusal names one of these.
const (
	CodeMalformed       Code = "malformed_evidence"  // the report, a certificate or the vTPM attestation cannot be parsed
	CodeBadSignature    Code = "bad_signature"       // the report's signature does not verify with its VCEK/VLEK
	CodeUntrustedChain  Code = "untrusted_chain"     // the VCEK/VLEK does not chain to a trusted AMD root
	CodeChainMismatch   Code = "chain_mismatch"      // the evidence's ASK/ASVK/ARK are not the trusted ones (swapped or broken)
	CodeMissingCert     Code = "missing_certificate" // no VCEK/VLEK in the evidence or the certificate cache
	CodeBadCertificate  Code = "bad_certificate"     // the VCEK/VLEK lacks AMD's KDS shape or extensions
	CodeWrongProduct    Code = "wrong_product"       // not the product that was expected, or the chain is for another one
	CodeCertExpired     Code = "certificate_expired" // a certificate expired before the verification time
	CodeCertNotYetValid Code = "certificate_not_yet_valid"
	CodeCertRevoked     Code = "certificate_revoked" // a CRL in the cache revokes the ASK/ASVK or the VCEK/VLEK
	CodeTCBInconsistent Code = "tcb_inconsistent"    // reported/committed/current TCB disagree with each other or the VCEK
	CodeChipIDMismatch  Code = "chip_id_mismatch"    // CHIP_ID differs from the VCEK's hardware ID
	CodeMeasurement     Code = "measurement_not_approved"
	CodeTCBBelowMinimum Code = "tcb_below_minimum" // one reason per component below the reference minimum
	CodeDebug           Code = "debug_enabled"     // the guest policy allows debugging
	CodeMigrationAgent  Code = "migration_agent_not_allowed"
	CodeSMT             Code = "smt_not_allowed"
	CodeSingleSocket    Code = "single_socket_required"
	CodeVMPL            Code = "vmpl_not_allowed"
	CodeHostData        Code = "host_data_mismatch"
	CodeIDKey           Code = "id_key_not_approved"
	CodeAuthorKey       Code = "author_key_not_approved"
	CodeFamilyID        Code = "family_id_mismatch"
	CodeImageID         Code = "image_id_mismatch"
	CodeChipNotAllowed  Code = "chip_not_allowed"
	CodeGuestSVN        Code = "guest_svn_below_minimum"
	CodeReportData      Code = "report_data_mismatch" // REPORT_DATA is not the caller's transcript hash
	CodeTPMMissing      Code = "tpm_missing"          // the reference values require a vTPM attestation
	CodeTPMMalformed    Code = "tpm_malformed"
	CodeTPMNonce        Code = "tpm_nonce_mismatch" // the quote is not over the expected nonce
	CodeTPMQuote        Code = "tpm_quote_invalid"  // quote signature, PCR digest or event log replay failed
	CodeTPMAKNotBound   Code = "tpm_ak_not_bound"   // the attestation key is neither bound into the SNP report nor certified
	CodeTPMAKUntrusted  Code = "tpm_ak_untrusted"   // the AK certificate does not chain to Google's roots
	CodePCRMismatch     Code = "pcr_mismatch"
	CodeSecureBootOff   Code = "secure_boot_off"
	CodeNoReference     Code = "no_reference_values" // the image has no reference values
)

// Qualifications that do not refuse, listed in Verdict.Warnings.
const (
	CodeRevocationNotChecked Code = "revocation_not_checked" // no CRL newer than the configured age
	CodeReportDataNotChecked Code = "report_data_not_checked"
	CodeReferenceNotChecked  Code = "reference_not_checked" // authenticity only
	CodeSimulated            Code = "simulated"             // signed by the simulated AMD root
)

// Reason is one finding: a stable code and a sentence for a person.
type Reason struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func reasonf(c Code, format string, args ...any) Reason {
	return Reason{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Verdict is the outcome of a verification.
type Verdict struct {
	// Verified is true only when there is no Reason.
	Verified bool `json:"verified"`
	// Authentic is true when the report's signature, its certificate chain
	// to a trusted root, the certificates' validity and revocation, and the
	// report's internal consistency all checked out, whatever the reference
	// values and REPORT_DATA say.
	Authentic bool `json:"authentic"`
	// Simulated is true when the chain ends at the simulated AMD root.
	Simulated bool     `json:"simulated"`
	Reasons   []Reason `json:"reasons"`
	Warnings  []Reason `json:"warnings"`
	// Claims are the decoded report; nil when the report cannot be parsed.
	Claims *Claims `json:"claims,omitempty"`
	// HardwareID is the chip's identity: the hardware ID extension
	// (1.3.6.1.4.1.3704.1.4) of the VCEK whose chain verified. The report's
	// CHIP_ID is not an identity: a host may zero it (MASK_CHIP_ID). Nil
	// when a VLEK signed the report (the cloud provider's key, the same on
	// every chip) or no chain verified.
	HardwareID Hex `json:"hardware_id,omitempty"`
	// TPM is the verified vTPM machine state, when the evidence has one.
	TPM *TPMState `json:"tpm,omitempty"`
	// EvidenceHash is Evidence.HashHex.
	EvidenceHash string `json:"evidence_hash"`
	// Image and ReferenceVersion name the reference values applied, if any.
	Image            string `json:"image,omitempty"`
	ReferenceVersion int    `json:"reference_version,omitempty"`
	// RevocationChecked says a fresh CRL was applied.
	RevocationChecked bool `json:"revocation_checked"`
	// ChainCached says the VCEK/VLEK chain came from the warm cache.
	ChainCached bool `json:"chain_cached"`
}

// Has reports whether the verdict names code among its reasons.
func (v *Verdict) Has(code Code) bool {
	for _, r := range v.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

// Codes lists the reason codes in order.
func (v *Verdict) Codes() []Code {
	out := make([]Code, len(v.Reasons))
	for i, r := range v.Reasons {
		out[i] = r.Code
	}
	return out
}

func (v *Verdict) refuse(c Code, format string, args ...any) {
	v.Reasons = append(v.Reasons, reasonf(c, format, args...))
}

func (v *Verdict) warn(c Code, format string, args ...any) {
	v.Warnings = append(v.Warnings, reasonf(c, format, args...))
}

// Summary is one line for logs and audit entries: the outcome, the first
// reason, and the claims that identify the guest. It holds no secrets
// (verdicts never do).
func (v *Verdict) Summary() string {
	var b strings.Builder
	switch {
	case v.Verified:
		b.WriteString("verified")
	case len(v.Reasons) > 0:
		fmt.Fprintf(&b, "refused (%s", v.Reasons[0].Code)
		if len(v.Reasons) > 1 {
			fmt.Fprintf(&b, " +%d", len(v.Reasons)-1)
		}
		b.WriteString(")")
	default:
		b.WriteString("refused")
	}
	if v.Simulated {
		b.WriteString(" SIMULATED")
	}
	if c := v.Claims; c != nil {
		fmt.Fprintf(&b, " %s %s chip %s measurement %s tcb %s", orAny(c.Product), c.Signer, shortHex(c.ChipID), shortHex(c.Measurement), c.ReportedTCB)
	}
	if v.EvidenceHash != "" {
		fmt.Fprintf(&b, " evidence %s", v.EvidenceHash[:min(16, len(v.EvidenceHash))])
	}
	return b.String()
}
