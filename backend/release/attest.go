package release

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"keyholder/backend/attest"
	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

// AttestVerifier adapts backend/attest to the engine: it applies the
// latest reference values of the volume's image and the release transcript
// as the expected REPORT_DATA.
type AttestVerifier struct {
	Verifier   *attest.Verifier
	References *attest.References
}

// notAuthentic are the attest reason codes that mean the report is not
// (known to be) signed by a trusted AMD chain. Any other reason refuses the
// evidence for what it says, not for who said it.
var notAuthentic = map[attest.Code]bool{
	attest.CodeMalformed: true, attest.CodeBadSignature: true, attest.CodeUntrustedChain: true, attest.CodeChainMismatch: true,
	attest.CodeMissingCert: true, attest.CodeBadCertificate: true, attest.CodeWrongProduct: true, attest.CodeCertExpired: true,
	attest.CodeCertNotYetValid: true, attest.CodeCertRevoked: true, attest.CodeTCBInconsistent: true, attest.CodeChipIDMismatch: true,
}

// Verify implements Verifier.
func (a AttestVerifier) Verify(ctx context.Context, ev wire.Evidence, imageID string, expected [64]byte) (Claims, error) {
	var ref *attest.ReferenceValues
	if imageID != "" && a.References != nil {
		rv, err := a.References.Latest(ctx, imageID)
		switch {
		case err == nil:
			ref = &rv.Values
		case errors.Is(err, store.ErrNotFound):
		default:
			return Claims{}, fmt.Errorf("reference values of %s: %w", imageID, err)
		}
	}
	aev := &attest.Evidence{Report: ev.Report, CertTable: ev.CertTable, VCEK: ev.VCEK, VLEK: ev.VLEK, ASK: ev.ASK, ASVK: ev.ASVK, ARK: ev.ARK, TPM: ev.TPM}
	vd, err := a.Verifier.Verify(ctx, aev, ref, attest.Expectation{ReportData: expected[:]})
	if err != nil {
		return Claims{}, err
	}
	return claimsFromVerdict(vd, ref != nil), nil
}

func claimsFromVerdict(vd *attest.Verdict, referenced bool) Claims {
	c := Claims{Verified: vd.Verified, Simulated: vd.Simulated, Authentic: vd.Claims != nil}
	for _, r := range vd.Reasons {
		c.Reasons = append(c.Reasons, wire.Reason{Code: string(r.Code), Message: r.Message})
		if notAuthentic[r.Code] {
			c.Authentic = false
		}
	}
	if !referenced {
		c.Verified = false
		c.Reasons = append(c.Reasons, wire.Reason{Code: string(attest.CodeNoReference), Message: "the volume's image has no reference values; an officer must approve a measurement first"})
	}
	if cl := vd.Claims; cl != nil {
		c.Product = string(cl.Product)
		c.ChipID = hex.EncodeToString(cl.ChipID)
		c.Measurement = hex.EncodeToString(cl.Measurement)
		c.ReportID = hex.EncodeToString(cl.ReportID)
		copy(c.ReportData[:], cl.ReportData)
		t := cl.ReportedTCB
		c.TCB = fleet.TCB{Bootloader: t.Bootloader, TEE: t.TEE, SNP: t.SNP, Microcode: t.Microcode}
		c.Debug = cl.Policy.Debug
		c.MigrationAgent = cl.Policy.MigrationAgent
	}
	return c
}
