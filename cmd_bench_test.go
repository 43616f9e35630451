package main

import (
	"context"
	"testing"
	"time"
)

// TestBenchReleaseSmall runs a tiny boot storm: every guest of a known
// fleet is released (routine boot), its secret opens with its key, and the
// audit log has one release entry per guest (benchRelease checks both).
func TestBenchReleaseSmall(t *testing.T) {
	res, err := benchRelease(context.Background(), benchOptions{guests: 40, concurrency: 8, chips: 3, ecdsaFor: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 40 || res.Errors != 0 || res.PerSecond <= 0 || res.ECDSAPerSecond <= 0 || res.P99ms < res.P50ms {
		t.Fatalf("result: %+v", res)
	}
}
