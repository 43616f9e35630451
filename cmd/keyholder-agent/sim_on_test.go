//go:build simulate

package main

import (
	"bytes"
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

func TestSimLaunchIDIsOnePerBoot(t *testing.T) {
	a := simLaunchID("chip-0", []byte("2b0c9a4e-1a43-4b8e-9a53-7f0e2d2c5b11\n"))
	if len(a) != 32 {
		t.Fatalf("REPORT_ID is %d bytes, want 32", len(a))
	}
	if !bytes.Equal(a, simLaunchID("chip-0", []byte("2b0c9a4e-1a43-4b8e-9a53-7f0e2d2c5b11\n"))) {
		t.Error("two agents of one boot present different REPORT_IDs")
	}
	if bytes.Equal(a, simLaunchID("chip-0", []byte("9d1e0f7a-6c2b-4d3e-8f41-5a6b7c8d9e0f\n"))) {
		t.Error("a reboot keeps the REPORT_ID")
	}
	if bytes.Equal(a, simLaunchID("chip-1", []byte("2b0c9a4e-1a43-4b8e-9a53-7f0e2d2c5b11\n"))) {
		t.Error("two chips give the same REPORT_ID")
	}
}
