package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestBenchReleaseCommandLine: keyholder bench release --wire --replicas 2
// --database FILE runs the storm through two release listeners on that
// SQLite file and says so in its JSON; replicas without --wire are refused.
func TestBenchReleaseCommandLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench.db")
	var l cliLog
	out := l.run(t, 0, "bench", "release", "--guests", "20", "--concurrency", "4", "--chips", "2", "--wire", "--replicas", "2", "--database", file, "--json")
	var res struct {
		Mode, Database string
		Replicas, OK   int
	}
	if err := json.Unmarshal([]byte(out[:len(out)-len(l.err.String())]), &res); err != nil {
		t.Fatalf("bench JSON: %v\n%s", err, out)
	}
	if res.Mode != "wire" || res.Database != "sqlite" || res.Replicas != 2 || res.OK != 20 {
		t.Fatalf("bench result: %+v", res)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the bench console is not in --database: %v", err)
	}
	l.run(t, 2, "bench", "release", "--guests", "2", "--replicas", "2")
}
