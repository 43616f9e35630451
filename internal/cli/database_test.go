package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyholder/backend/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(serveChildEnv) != "" {
		os.Exit(runServeChild())
	}
	code := m.Run()
	storetest.Stop() // the private PostgreSQL server, if a test started one
	os.Exit(code)
}

// TestDatabaseFlag: --database puts the console on PostgreSQL (nothing is
// written to the data directory's SQLite file) and every command that
// opens the store follows it; a value that is not a postgres:// URL is
// refused before anything happens.
func TestDatabaseFlag(t *testing.T) {
	dbURL := storetest.NewDatabase(t, storetest.Server(t))
	data := t.TempDir()
	pass := secretFile(t, t.TempDir(), "pass", "alice's long passphrase")
	var l cliLog
	l.run(t, 0, "init", "--data", data, "--database", dbURL, "--officer", "alice", "--passphrase-file", pass)
	if _, err := os.Stat(filepath.Join(data, "keyholder.db")); !os.IsNotExist(err) {
		t.Fatalf("init with --database wrote a SQLite file (%v)", err)
	}
	out := l.run(t, 0, "officers", "list", "--data", data, "--database", dbURL)
	if !strings.Contains(out, "alice") {
		t.Fatalf("officers list on PostgreSQL: %s", out)
	}
	out = l.run(t, 0, "audit", "verify", "--data", data, "--database", dbURL)
	if !strings.Contains(out, "verifies") {
		t.Fatalf("audit verify on PostgreSQL: %s", out)
	}
	// The same data directory without --database is another (empty) console.
	out = l.run(t, 0, "officers", "list", "--data", data)
	if strings.Contains(out, "alice") {
		t.Fatalf("officers list without --database found PostgreSQL's officers: %s", out)
	}
	out = l.run(t, 2, "officers", "list", "--data", data, "--database", filepath.Join(data, "x.db"))
	if !strings.Contains(out, "not a postgres:// URL") {
		t.Fatalf("a file path as --database: %s", out)
	}
}
