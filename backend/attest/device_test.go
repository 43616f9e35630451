package attest_test

import (
	"context"
	"testing"

	"github.com/google/go-sev-guest/client"

	"keyholder/backend/attest"
	"keyholder/backend/sim"
)

// TestSimulatedDevice goes through go-sev-guest's client API, as the agent
// does, and verifies the quote.
func TestSimulatedDevice(t *testing.T) {
	v := newVerifier(t, attest.Options{})
	for _, p := range attest.Products {
		d := sim.NewDevice(chip(t, p, "device"), sim.ReportOptions{})
		var qp client.LeveledQuoteProvider = d
		raw, err := qp.GetRawQuoteAtLevel(rd, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.GetQuoteProto(d, rd); err != nil {
			t.Fatalf("go-sev-guest cannot read the quote: %v", err)
		}
		ev, err := attest.EvidenceFromQuote(raw)
		if err != nil {
			t.Fatal(err)
		}
		ref := goodRef(p)
		ref.AllowedVMPLs = []uint32{1}
		vd, err := v.Verify(context.Background(), ev, ref, attest.Expectation{ReportData: rd[:]})
		if err != nil {
			t.Fatal(err)
		}
		if !vd.Verified || vd.Claims.VMPL != 1 {
			t.Fatalf("%s: %v", p, vd.Reasons)
		}
	}
	if _, err := attest.EvidenceFromQuote(make([]byte, 100)); err == nil {
		t.Fatal("short quote accepted")
	}
}
