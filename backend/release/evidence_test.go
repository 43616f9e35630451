package release

import (
	"encoding/json"
	"testing"

	"keyholder/backend/attest"
)

func TestClaimsCarryTheDecodedEvidence(t *testing.T) {
	vd := &attest.Verdict{Verified: true, Simulated: true,
		Claims: &attest.Claims{Product: attest.Genoa, Signer: attest.VCEK, ChipID: attest.Hex{0xaa, 0xbb}, Measurement: attest.Hex{1, 2, 3},
			VMPL: 0, Policy: attest.Policy{SMT: true}, ReportedTCB: attest.TCB{Bootloader: 9, SNP: 23, Microcode: 84}},
		TPM: &attest.TPMState{Verified: true, SecureBoot: true, Hash: "SHA256", PCRs: map[uint32]attest.Hex{7: {0x07}}},
	}
	c := claimsFromVerdict(vd, true)
	var ev struct {
		SNP struct {
			Product     string `json:"product"`
			Signer      string `json:"signer"`
			Measurement string `json:"measurement"`
			Policy      struct {
				Debug bool `json:"debug"`
				SMT   bool `json:"smt"`
			} `json:"policy"`
			ReportedTCB struct {
				SNP int `json:"snp"`
			} `json:"reported_tcb"`
		} `json:"snp"`
		TPM *struct {
			SecureBoot bool              `json:"secure_boot"`
			PCRs       map[string]string `json:"pcrs"`
		} `json:"tpm"`
	}
	if err := json.Unmarshal(c.Evidence, &ev); err != nil {
		t.Fatalf("evidence %s: %v", c.Evidence, err)
	}
	if ev.SNP.Product != "Genoa" || ev.SNP.Signer != "VCEK" || ev.SNP.Measurement != "010203" || !ev.SNP.Policy.SMT || ev.SNP.Policy.Debug || ev.SNP.ReportedTCB.SNP != 23 {
		t.Errorf("snp claims = %s", c.Evidence)
	}
	if ev.TPM == nil || !ev.TPM.SecureBoot || ev.TPM.PCRs["7"] != "07" {
		t.Errorf("tpm state = %s", c.Evidence)
	}
	// Refused, unauthentic evidence carries no decoded claims.
	if c := claimsFromVerdict(&attest.Verdict{}, true); c.Evidence != nil {
		t.Errorf("evidence without claims = %s", c.Evidence)
	}
}
