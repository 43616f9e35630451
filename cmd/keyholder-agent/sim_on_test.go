//go:build simulate

package main

import (
	"bytes"
	"testing"
)

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
