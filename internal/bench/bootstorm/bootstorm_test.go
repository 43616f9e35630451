package bootstorm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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

// TestBenchReleaseWireReplicas: --wire --replicas 2 on a SQLite file given
// with --database: every guest is released through a real TLS release
// listener, spread over two consoles on the one database, and each secret
// opens (Run checks it and the audit log). A database that holds
// a console already is refused, not overwritten.
func TestBenchReleaseWireReplicas(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench.db")
	res, err := Run(context.Background(), Options{Guests: 40, Concurrency: 8, Chips: 3, ECDSAFor: 50 * time.Millisecond,
		Database: file, Wire: true, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 40 || res.Errors != 0 || res.Mode != "wire" || res.Replicas != 2 || res.Database != "sqlite" || res.P99ms < res.P50ms {
		t.Fatalf("result: %+v", res)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the bench console is not in --database: %v", err)
	}
	_, err = Run(context.Background(), Options{Guests: 4, Concurrency: 2, Chips: 1, ECDSAFor: 10 * time.Millisecond, Database: file, Wire: true})
	if err == nil || !strings.Contains(err.Error(), "holds a console already") {
		t.Fatalf("bench on a database with a console: %v", err)
	}
	if _, err := Run(context.Background(), Options{Guests: 4, Concurrency: 2, Chips: 1, Replicas: 2}); err == nil {
		t.Fatal("replicas without --wire were accepted")
	}
}

// TestBenchReleaseWarmUp: with a warm-up, other guests of the fleet are
// released before the storm (checked as the storm's are: routine, the
// secret opens) and not counted in it; the audit log holds one release
// entry for each of both (Run checks it).
func TestBenchReleaseWarmUp(t *testing.T) {
	res, err := Run(context.Background(), Options{Guests: 20, WarmUp: 12, Concurrency: 4, Chips: 3, ECDSAFor: 10 * time.Millisecond,
		Database: filepath.Join(t.TempDir(), "bench.db"), Wire: true, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 20 || res.Errors != 0 || res.Guests != 20 {
		t.Fatalf("result: %+v", res)
	}
}
