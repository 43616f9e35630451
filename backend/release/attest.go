package release

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/audit"
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

// AKDigest implements Verifier.
func (a AttestVerifier) AKDigest(ev wire.Evidence) []byte {
	return (&attest.Evidence{TPM: ev.TPM}).AKDigest()
}

// RecordReferenceTx makes proposal (reference values proposed from an
// approved first boot) the image's reference values, audited in log in the
// caller's transaction. When the image has reference values already (pinned
// meanwhile) it records nothing, and returns ErrPinnedOtherwise unless they
// admit the proposal's measurements.
func (a AttestVerifier) RecordReferenceTx(ctx context.Context, log *audit.Log, tx *sql.Tx, now time.Time, imageID string, proposal json.RawMessage, by string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM reference_values WHERE image_id = ?`, imageID).Scan(&n); err != nil {
		return fmt.Errorf("read reference values: %w", store.Classify(err))
	}
	var rv attest.ReferenceValues
	if err := json.Unmarshal(proposal, &rv); err != nil {
		return fmt.Errorf("proposed reference values: %w", err)
	}
	if n > 0 {
		// Pinned meanwhile (another first boot, or an officer): the
		// launch must be one the current values admit.
		var body string
		if err := tx.QueryRowContext(ctx, `SELECT body FROM reference_values WHERE image_id = ? ORDER BY version DESC LIMIT 1`, imageID).Scan(&body); err != nil {
			return fmt.Errorf("read reference values: %w", store.Classify(err))
		}
		var cur attest.ReferenceValues
		if err := json.Unmarshal([]byte(body), &cur); err != nil {
			return fmt.Errorf("reference values of %s: %w", imageID, err)
		}
		for _, m := range rv.Measurements {
			if !slices.ContainsFunc(cur.Measurements, func(c attest.Hex) bool { return bytes.Equal(c, m) }) {
				return fmt.Errorf("image %s, measurement %x: %w", imageID, []byte(m), ErrPinnedOtherwise)
			}
		}
		return nil
	}
	v, err := attest.PutReferenceTx(ctx, tx, now, imageID, &rv, by, "approved with a first boot")
	if err != nil {
		return err
	}
	_, err = log.Append(ctx, tx, audit.Entry{At: now, Actor: by, Action: "reference.approve", Subject: imageID, Decision: "approved",
		Reason: fmt.Sprintf("reference values version %d (measurement %s) approved with a first boot", v.Version, firstMeasurement(rv))})
	return err
}

func firstMeasurement(rv attest.ReferenceValues) string {
	if len(rv.Measurements) == 0 {
		return "none"
	}
	return hex.EncodeToString(rv.Measurements[0])
}

// ErrPinnedOtherwise means an approved first boot's measurement is not in
// reference values that were recorded after it was proposed.
var ErrPinnedOtherwise = errors.New("the reference values were pinned otherwise")

// ReferenceRecorder is implemented by verifiers that can turn an approved
// first boot's proposal into reference values (AttestVerifier).
type ReferenceRecorder interface {
	RecordReferenceTx(ctx context.Context, log *audit.Log, tx *sql.Tx, now time.Time, imageID string, proposal json.RawMessage, by string) error
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
func (a AttestVerifier) Verify(ctx context.Context, ev wire.Evidence, image ImageRef, expected [64]byte) (Claims, error) {
	var ref *attest.ReferenceValues
	version := 0
	if imageID := image.ID; imageID != "" && a.References != nil {
		rv, err := a.References.LatestAt(stmtContext(ctx), imageID, image.ConfigVersion)
		switch {
		case err == nil:
			ref, version = &rv.Values, rv.Version
		case errors.Is(err, store.ErrNotFound):
		default:
			return Claims{}, fmt.Errorf("reference values of %s: %w", imageID, err)
		}
	}
	aev := &attest.Evidence{Report: ev.Report, CertTable: ev.CertTable, VCEK: ev.VCEK, VLEK: ev.VLEK, ASK: ev.ASK, ASVK: ev.ASVK, ARK: ev.ARK, TPM: ev.TPM}
	// The engine hashed the AK digest into the expected REPORT_DATA
	// (wire.Binding.AKDigest); the vTPM quote is over REPORT_DATA.
	exp := attest.Expectation{ReportData: expected[:], AKDigest: aev.AKDigest(), StaleCRL: attest.CRLWarn}
	if image.RefuseStaleCRL {
		exp.StaleCRL = attest.CRLRefuse
	}
	vd, err := a.Verifier.Verify(ctx, aev, ref, exp)
	if err != nil {
		return Claims{}, err
	}
	c := claimsFromVerdict(vd, ref != nil)
	c.ReferenceVersion = version
	return c, nil
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
		// Authenticity and the transcript only: an officer decides, and
		// approving records reference values admitting exactly this launch.
		c.Unreferenced = true
		if vd.Claims != nil {
			c.ProposedReference, _ = json.Marshal(attest.ReferenceFromClaims(vd.Claims))
		}
	}
	if cl := vd.Claims; cl != nil {
		c.Product = string(cl.Product)
		c.Signer = string(cl.Signer)
		if cl.Signer == attest.VCEK {
			c.ChipID = hex.EncodeToString(vd.HardwareID)
		}
		c.Measurement = hex.EncodeToString(cl.Measurement)
		c.ReportID = hex.EncodeToString(cl.ReportID)
		copy(c.ReportData[:], cl.ReportData)
		t := cl.ReportedTCB
		c.TCB = fleet.TCB{Bootloader: t.Bootloader, TEE: t.TEE, SNP: t.SNP, Microcode: t.Microcode, FMC: t.FMC}
		c.Debug = cl.Policy.Debug
		c.MigrationAgent = cl.Policy.MigrationAgent
		c.Evidence, _ = json.Marshal(struct {
			SNP *attest.Claims   `json:"snp"`
			TPM *attest.TPMState `json:"tpm"`
			// ChipIdentity is the chip as the console keys it (the VCEK's
			// hardware ID, or "none (VLEK)"), beside the report's CHIP_ID.
			ChipIdentity string `json:"chip_identity"`
		}{cl, vd.TPM, fleet.ChipIdentity(c.Signer, c.ChipID)})
	}
	return c
}
