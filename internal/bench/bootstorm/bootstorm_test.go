package bootstorm

import (
	"context"
	"testing"
	"time"
)

// TestBenchReleaseSmall runs a tiny boot storm: every guest of a known
// fleet is released (routine boot), its secret opens with its key, and the
// audit log has one release entry per guest (Run checks both).
func TestBenchReleaseSmall(t *testing.T) {
	res, err := Run(context.Background(), Options{Guests: 40, Concurrency: 8, Chips: 3, ECDSAFor: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 40 || res.Errors != 0 || res.PerSecond <= 0 || res.ECDSAPerSecond <= 0 || res.P99ms < res.P50ms {
		t.Fatalf("result: %+v", res)
	}
}

// TestBenchReleaseOpenLoop: at a rate, guests boot on schedule: the storm
// cannot end before the last guest's boot time, and everyone is released.
func TestBenchReleaseOpenLoop(t *testing.T) {
	res, err := Run(context.Background(), Options{Guests: 30, Concurrency: 8, Chips: 3, Rate: 100, ECDSAFor: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 30 || res.Errors != 0 || res.OfferedRate != 100 || res.Seconds < 0.29 {
		t.Fatalf("result: %+v", res)
	}
}
