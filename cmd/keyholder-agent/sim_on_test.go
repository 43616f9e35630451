//go:build simulate

package main

import (
	"context"
	"flag"
	"testing"

	"keyholder/backend/attest"
)

// TestSimSwitches: --sim-mask-chip-id zeroes CHIP_ID (MASK_CHIP_ID) and
// --sim-vlek has the simulated cloud provider's VLEK sign.
func TestSimSwitches(t *testing.T) {
	for _, c := range []struct {
		args   []string
		masked bool
		signer attest.Signer
	}{
		{nil, false, attest.VCEK},
		{[]string{"--sim-mask-chip-id"}, true, attest.VCEK},
		{[]string{"--sim-vlek", "--sim-product", "Milan"}, false, attest.VLEK},
	} {
		var o simOptions
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		o.flags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		ev, err := o.evidencer()
		if err != nil {
			t.Fatal(err)
		}
		w, err := ev.Evidence(context.Background(), [64]byte{1})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := attest.ReportClaims(w.Report)
		if err != nil {
			t.Fatal(err)
		}
		zero := true
		for _, b := range cl.ChipID {
			zero = zero && b == 0
		}
		if cl.ChipIDMasked != c.masked || zero != c.masked || cl.Signer != c.signer {
			t.Errorf("%v: masked %v (CHIP_ID zero %v), signer %s", c.args, cl.ChipIDMasked, zero, cl.Signer)
		}
	}
}
