package cli

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

// TestBenchReleaseOpenLoop: at a rate, guests boot on schedule: the storm
// cannot end before the last guest's boot time, and everyone is released.
func TestBenchReleaseOpenLoop(t *testing.T) {
	res, err := benchRelease(context.Background(), benchOptions{guests: 30, concurrency: 8, chips: 3, rate: 100, ecdsaFor: 50 * time.Millisecond})
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
// opens (benchRelease checks it and the audit log). A database that holds
// a console already is refused, not overwritten.
func TestBenchReleaseWireReplicas(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench.db")
	res, err := benchRelease(context.Background(), benchOptions{guests: 40, concurrency: 8, chips: 3, ecdsaFor: 50 * time.Millisecond,
		database: file, wire: true, replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 40 || res.Errors != 0 || res.Mode != "wire" || res.Replicas != 2 || res.Database != "sqlite" || res.P99ms < res.P50ms {
		t.Fatalf("result: %+v", res)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the bench console is not in --database: %v", err)
	}
	_, err = benchRelease(context.Background(), benchOptions{guests: 4, concurrency: 2, chips: 1, ecdsaFor: 10 * time.Millisecond, database: file, wire: true})
	if err == nil || !strings.Contains(err.Error(), "holds a console already") {
		t.Fatalf("bench on a database with a console: %v", err)
	}
	if _, err := benchRelease(context.Background(), benchOptions{guests: 4, concurrency: 2, chips: 1, replicas: 2}); err == nil {
		t.Fatal("replicas without --wire were accepted")
	}
}
