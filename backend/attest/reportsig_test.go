package attest_test

import (
	"context"
	"fmt"
	"strings"
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

// The warm signature check takes only a report of exactly ReportSize
// bytes, whatever its callers checked: a genuine report with bytes added
// is refused (the bytes past the signature are not signed), and shorter
// ones get an error, never a panic. With the table budget spent (the
// go-sev-guest path) the same holds.
func TestWarmSignatureLength(t *testing.T) {
	ctx := context.Background()
	for _, budgetFull := range []bool{false, true} {
		v := newVerifier(t, attest.Options{})
		if budgetFull {
			v.FillKeyTableBudget()
		}
		c := chip(t, attest.Genoa, "length")
		ev, err := c.Evidence(sim.ReportOptions{ReportData: rd})
		if err != nil {
			t.Fatal(err)
		}
		if vd, err := v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]}); err != nil || !vd.Verified {
			t.Fatalf("honest report (budget full %v): %v %v", budgetFull, err, vd)
		}
		genuine := ev.Report
		errs := v.VerifyReportCached(genuine)
		if len(errs) != 1 || errs[0] != nil {
			t.Fatalf("budget full %v: genuine report: %v", budgetFull, errs)
		}
		// The check above made the key's table (unless the budget is spent).
		if got := v.KeyTables(); (got == 1) == budgetFull {
			t.Fatalf("budget full %v: %d key tables", budgetFull, got)
		}
		cases := map[string][]byte{
			"empty":                 {},
			"one byte":              {1},
			"signed part only":      genuine[:0x2A0],
			"signed part and R":     genuine[:0x2A0+0x48],
			"one byte short":        genuine[:attest.ReportSize-1],
			"one byte more":         append(append([]byte(nil), genuine...), 0),
			"a second report after": append(append([]byte(nil), genuine...), genuine...),
		}
		for name, raw := range cases {
			var errs []error
			if msg := catchPanic(func() { errs = v.VerifyReportCached(raw) }); msg != "" {
				t.Fatalf("%s (%d bytes, budget full %v): panic %s", name, len(raw), budgetFull, msg)
			}
			if len(errs) != 1 || errs[0] == nil {
				t.Fatalf("%s (%d bytes, budget full %v): accepted", name, len(raw), budgetFull)
			}
			if !strings.Contains(errs[0].Error(), "bytes") {
				t.Fatalf("%s: error %q does not name the size", name, errs[0])
			}
		}
	}
}

func catchPanic(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}
