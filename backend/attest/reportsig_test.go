package attest_test

import (
	"context"
	"testing"

	"keyholder/backend/attest"
	"keyholder/backend/sim"
)

// The warm signature check (a p384 table per signing key) accepts exactly
// what go-sev-guest accepts: honest reports, and no report with a changed
// signed byte or signature byte; with the table budget spent it falls back
// to go-sev-guest; a cache clear gives the tables back.
func TestWarmSignatureTable(t *testing.T) {
	ctx := context.Background()
	for _, budgetFull := range []bool{false, true} {
		v := newVerifier(t, attest.Options{})
		if budgetFull {
			v.FillKeyTableBudget()
		}
		c := chip(t, attest.Genoa, "table")
		verify := func(ev *attest.Evidence) *attest.Verdict {
			t.Helper()
			vd, err := v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]})
			if err != nil {
				t.Fatal(err)
			}
			return vd
		}
		for i := 0; i < 3; i++ {
			ev, err := c.Evidence(sim.ReportOptions{ReportData: rd})
			if err != nil {
				t.Fatal(err)
			}
			if vd := verify(ev); !vd.Verified || vd.ChainCached != (i > 0) {
				t.Fatalf("honest report %d (budget full %v): verified %v cached %v %v", i, budgetFull, vd.Verified, vd.ChainCached, vd.Reasons)
			}
		}
		want := int64(1)
		if budgetFull {
			want = 128
		}
		if got := v.KeyTables(); got != want {
			t.Fatalf("budget full %v: %d key tables, want %d", budgetFull, got, want)
		}
		// 0x50 is in the signed part (the launch measurement), 0x2A0 the
		// signature's R, 0x2E8 its S.
		for _, off := range []int{0x50, 0x2A0, 0x2A0 + 0x2F, 0x2E8, 0x2E8 + 0x2F} {
			ev, err := c.Evidence(sim.ReportOptions{ReportData: rd})
			if err != nil {
				t.Fatal(err)
			}
			ev.Report[off] ^= 0x01
			vd := verify(ev)
			if vd.Verified || !hasCode(vd, attest.CodeBadSignature) {
				t.Fatalf("byte %#x changed (budget full %v): verified %v, reasons %v", off, budgetFull, vd.Verified, vd.Reasons)
			}
		}
		if !budgetFull {
			v.ClearChains()
			if got := v.KeyTables(); got != 0 {
				t.Fatalf("%d key tables after the cache was cleared", got)
			}
		}
	}
}

func hasCode(vd *attest.Verdict, c attest.Code) bool {
	for _, r := range vd.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}
