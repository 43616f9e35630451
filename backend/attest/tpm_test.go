package attest_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"strings"
	"sync"
	"testing"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/sim"
	"keyholder/backend/sim/simtpm"
)

var (
	tpmMu    sync.Mutex
	tpmCache = map[string][]byte{}
)

// tpmAtt caches simulator attestations per options and nonce (each run of
// the C simulator costs tens of milliseconds).
func tpmAtt(t testing.TB, o simtpm.Options, nonce []byte) []byte {
	t.Helper()
	key := string(rune(o.Seed)) + map[bool]string{true: "sb", false: "nosb"}[o.SecureBoot] + string(o.ExtraPCR16) + string(nonce)
	tpmMu.Lock()
	defer tpmMu.Unlock()
	if b, ok := tpmCache[key]; ok {
		return b
	}
	b, err := simtpm.Attestation(o, nonce)
	if err != nil {
		t.Fatal(err)
	}
	tpmCache[key] = b
	return b
}

// boundEvidence makes SNP evidence whose REPORT_DATA binds the vTPM's AK
// digest, the way a release transcript does.
func boundEvidence(t testing.TB, o simtpm.Options, nonce []byte) (*attest.Evidence, []byte, []byte) {
	t.Helper()
	tpm := tpmAtt(t, o, nonce)
	probe := &attest.Evidence{TPM: tpm}
	akd := probe.AKDigest()
	if akd == nil {
		t.Fatal("no AK digest")
	}
	h := sha512.New()
	h.Write([]byte("test transcript\x00"))
	h.Write(nonce)
	h.Write(akd)
	var reportData [64]byte
	copy(reportData[:], h.Sum(nil))
	ev, err := chip(t, attest.Genoa, "tpm-host").Evidence(sim.ReportOptions{ReportData: reportData})
	if err != nil {
		t.Fatal(err)
	}
	ev.TPM = tpm
	return ev, reportData[:], akd
}

func TestVerifyTPMBound(t *testing.T) {
	v := newVerifier(t, attest.Options{})
	nonce := []byte("0123456789abcdef0123456789abcdef")
	ev, reportData, akd := boundEvidence(t, simtpm.Options{Seed: 1, SecureBoot: true}, nonce)
	ref := goodRef(attest.Genoa)
	ref.TPM = &attest.TPMReference{Required: true, RequireSecureBoot: true}
	vd, err := v.Verify(context.Background(), ev, ref, attest.Expectation{ReportData: reportData, TPMNonce: nonce, AKDigest: akd})
	if err != nil {
		t.Fatal(err)
	}
	if !vd.Verified || vd.TPM == nil || !vd.TPM.Verified {
		t.Fatalf("not verified: %v", vd.Reasons)
	}
	st := vd.TPM
	if !st.SecureBoot || st.AKTrust != "snp_report" || len(st.PCRs) == 0 || st.Hash == "" {
		t.Fatalf("machine state %+v", st)
	}
	if !strings.Contains(st.KernelCmdline, "vmlinuz") {
		t.Errorf("kernel command line %q", st.KernelCmdline)
	}
	if len(st.PK) == 0 || len(st.DB) == 0 {
		t.Errorf("no Secure Boot database digests: %+v", st)
	}
	// Pin PCR 7 to its verified value: still verified.
	ref.TPM.PCRs = map[uint32]attest.Hex{7: st.PCRs[7]}
	vd, _ = v.Verify(context.Background(), ev, ref, attest.Expectation{ReportData: reportData, TPMNonce: nonce, AKDigest: akd})
	if !vd.Verified {
		t.Fatalf("pinned PCR 7 refused: %v", vd.Reasons)
	}
}

func TestVerifyTPMNegative(t *testing.T) {
	nonce := []byte("0123456789abcdef0123456789abcdef")
	cases := []struct {
		name string
		o    simtpm.Options
		// edit changes what the verifier is told or given.
		edit     func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference)
		wantCode attest.Code
	}{
		{name: "quote with wrong nonce", o: simtpm.Options{Seed: 1, SecureBoot: true},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				exp.TPMNonce = []byte("another nonce")
			},
			wantCode: attest.CodeTPMNonce},
		{name: "AK not bound", o: simtpm.Options{Seed: 1, SecureBoot: true},
			edit:     func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) { exp.AKDigest = nil },
			wantCode: attest.CodeTPMAKNotBound},
		{name: "AK of another TPM", o: simtpm.Options{Seed: 1, SecureBoot: true},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				ev.TPM = tpmAtt(t, simtpm.Options{Seed: 2, SecureBoot: true}, nonce)
			},
			wantCode: attest.CodeTPMAKNotBound},
		{name: "AK bound but REPORT_DATA wrong", o: simtpm.Options{Seed: 1, SecureBoot: true},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				exp.ReportData = make([]byte, 64)
			},
			wantCode: attest.CodeTPMAKNotBound},
		{name: "AK bound through a report whose VCEK expired", o: simtpm.Options{Seed: 1, SecureBoot: true},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				exp.At = sim.KeyNotAfter.Add(time.Hour)
			},
			wantCode: attest.CodeTPMAKNotBound},
		{name: "PCR mismatch", o: simtpm.Options{Seed: 1, SecureBoot: true},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				ref.PCRs = map[uint32]attest.Hex{7: bytes.Repeat([]byte{0xab}, 32)}
			},
			wantCode: attest.CodePCRMismatch},
		{name: "PCR 16 extended after boot", o: simtpm.Options{Seed: 1, SecureBoot: true, ExtraPCR16: []byte("rootkit")},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				ref.PCRs = map[uint32]attest.Hex{16: make([]byte, 32)}
			},
			wantCode: attest.CodePCRMismatch},
		{name: "secure boot required but off", o: simtpm.Options{Seed: 1, SecureBoot: false},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				ref.RequireSecureBoot = true
			},
			wantCode: attest.CodeSecureBootOff},
		{name: "quote tampered", o: simtpm.Options{Seed: 1, SecureBoot: true},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				// The event log's first bytes change: replay no longer matches.
				tpm := append([]byte(nil), ev.TPM...)
				i := bytes.Index(tpm, []byte("Spec ID Event03"))
				if i < 0 {
					t.Fatal("no spec ID event")
				}
				tpm[i+200] ^= 0xff
				ev.TPM = tpm
			},
			wantCode: attest.CodeTPMQuote},
		{name: "truncated attestation", o: simtpm.Options{Seed: 1, SecureBoot: true},
			edit: func(ev *attest.Evidence, exp *attest.Expectation, ref *attest.TPMReference) {
				ev.TPM = ev.TPM[:len(ev.TPM)/2]
			},
			wantCode: attest.CodeTPMMalformed},
	}
	v := newVerifier(t, attest.Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, reportData, akd := boundEvidence(t, tc.o, nonce)
			exp := attest.Expectation{ReportData: reportData, TPMNonce: nonce, AKDigest: akd}
			ref := goodRef(attest.Genoa)
			ref.TPM = &attest.TPMReference{Required: true}
			tc.edit(ev, &exp, ref.TPM)
			vd, err := v.Verify(context.Background(), ev, ref, exp)
			if err != nil {
				t.Fatal(err)
			}
			if vd.Verified || !vd.Has(tc.wantCode) {
				t.Fatalf("verified=%v reasons %v, want %s", vd.Verified, vd.Reasons, tc.wantCode)
			}
		})
	}
}

func TestVerifyTPMSecureBootOffState(t *testing.T) {
	v := newVerifier(t, attest.Options{})
	nonce := []byte("n1")
	att := tpmAtt(t, simtpm.Options{Seed: 4}, nonce)
	akd := (&attest.Evidence{TPM: att}).AKDigest()
	st, reasons := v.VerifyTPM(att, nonce, akd, false, nil)
	if len(reasons) != 0 || !st.Verified {
		t.Fatalf("reasons %v", reasons)
	}
	if st.SecureBoot || st.KernelCmdline != simtpm.NoSecureBootCmdline {
		t.Fatalf("secure boot %v, command line %q", st.SecureBoot, st.KernelCmdline)
	}
}

func TestVerifyTPMStandaloneGCE(t *testing.T) {
	// The simulator's AK has no Google certificate: --gce refuses it.
	v := newVerifier(t, attest.Options{})
	nonce := []byte("gce nonce")
	st, reasons := v.VerifyTPM(tpmAtt(t, simtpm.Options{Seed: 3, SecureBoot: true}, nonce), nonce, nil, true, nil)
	if len(reasons) == 0 || reasons[0].Code != attest.CodeTPMAKUntrusted || st == nil || st.Verified {
		t.Fatalf("reasons %v", reasons)
	}
}
