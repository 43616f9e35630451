package attest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"keyholder/backend/attest"
)

// TestRealMilanReport verifies a report signed by real AMD hardware against
// AMD's production roots, and refuses its variations.
func TestRealMilanReport(t *testing.T) {
	report, err := os.ReadFile("testdata/real-milan/report.bin")
	if err != nil {
		t.Fatal(err)
	}
	vcek, err := os.ReadFile("testdata/real-milan/vcek.der")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	v, err := attest.NewVerifier(context.Background(), attest.Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	ev := &attest.Evidence{Report: report, VCEK: vcek}
	vd, err := v.Verify(context.Background(), ev, nil, attest.Expectation{SkipReportData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !vd.Verified || !vd.Authentic || vd.Simulated || vd.Claims.Product != attest.Milan || vd.Claims.Version != 2 {
		t.Fatalf("real report: verified=%v simulated=%v product=%q %v", vd.Verified, vd.Simulated, vd.Claims.Product, vd.Reasons)
	}
	if tcb := vd.Claims.ReportedTCB; tcb.Bootloader != 2 || tcb.SNP != 5 || tcb.Microcode != 68 {
		t.Fatalf("TCB %+v", tcb)
	}

	ref := &attest.ReferenceValues{Measurements: []attest.Hex{vd.Claims.Measurement}, AllowSMT: true}
	flipped := append([]byte(nil), report...)
	flipped[0x50] ^= 1
	cases := []struct {
		name string
		ev   *attest.Evidence
		ref  *attest.ReferenceValues
		exp  attest.Expectation
		want attest.Code
	}{
		{"its debug policy against reference values", ev, ref, attest.Expectation{SkipReportData: true}, attest.CodeDebug},
		{"one REPORT_DATA bit flipped", &attest.Evidence{Report: flipped, VCEK: vcek}, nil, attest.Expectation{SkipReportData: true}, attest.CodeBadSignature},
		{"after the VCEK expired", ev, nil, attest.Expectation{SkipReportData: true, At: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, attest.CodeCertExpired},
		{"claimed to be Genoa", ev, nil, attest.Expectation{SkipReportData: true, Product: attest.Genoa}, attest.CodeWrongProduct},
		{"without its VCEK", &attest.Evidence{Report: report}, nil, attest.Expectation{SkipReportData: true, Product: attest.Milan}, attest.CodeMissingCert},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vd, err := v.Verify(context.Background(), tc.ev, tc.ref, tc.exp)
			if err != nil {
				t.Fatal(err)
			}
			if vd.Verified || !vd.Has(tc.want) {
				t.Fatalf("reasons %v, want %s", vd.Reasons, tc.want)
			}
		})
	}
}
