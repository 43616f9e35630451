package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestOpenMigratesFromEmpty(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyholder.db")
	db, err := Open(ctx, path, Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != LatestVersion() || v == 0 {
		t.Fatalf("schema version = %d, want %d", v, LatestVersion())
	}
	for _, table := range []string{"settings", "images", "volumes", "vms", "approval_requests", "audit_log"} {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s missing after migration (n=%d, err=%v)", table, n, err)
		}
	}
	var mode string
	db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var fk int
	db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
	if fk != 1 {
		t.Errorf("foreign_keys = %d, want 1", fk)
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReopenIsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyholder.db")
	for i := 0; i < 3; i++ {
		db, err := Open(ctx, path, Options{Exclusive: true})
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		var n int
		db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n)
		ms, _ := Migrations()
		if n != len(ms) {
			t.Fatalf("open #%d: %d migration records, want %d", i, n, len(ms))
		}
		db.Close()
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyholder.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	future := LatestVersion() + 7
	if _, err := db.Exec(`INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, 'future', 'x')`, future); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, path, Options{})
	if !errors.Is(err, ErrTooNew) {
		t.Fatalf("open newer schema: err = %v, want ErrTooNew", err)
	}
	// Refusing must not touch the file.
	db2, err := Open(ctx, path+"-copy", Options{})
	if err != nil {
		t.Fatal(err)
	}
	db2.Close()
}

func TestRefusesCorruptFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyholder.db")
	garbage := []byte("this is not a database, it is a shopping list: eggs, milk, keys\n")
	for len(garbage) < 8192 {
		garbage = append(garbage, garbage...)
	}
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, path, Options{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open garbage: err = %v, want ErrCorrupt", err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(garbage) {
		t.Fatal("refusing a corrupt file changed it")
	}
}

func TestSecondConsoleIsLockedOut(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyholder.db")
	first, err := Open(ctx, path, Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path, Options{Exclusive: true})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second console: err = %v, want ErrInUse", err)
	}
	// A command-line tool may still share the file with the running console.
	cli, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("shared open beside a console: %v", err)
	}
	cli.Close()
	first.Close()
	again, err := Open(ctx, path, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("open after the first console closed: %v", err)
	}
	again.Close()
}

func TestConcurrentOpenAndWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyholder.db")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			db, err := Open(ctx, path, Options{})
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			for j := 0; j < 20; j++ {
				err := db.Tx(ctx, func(tx *sql.Tx) error {
					_, err := tx.Exec(`INSERT INTO settings(key, value, updated_at) VALUES (?, '1', 'now')
						ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1`, "counter")
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	db.QueryRow(`SELECT value FROM settings WHERE key='counter'`).Scan(&n)
	if n != 8*20 {
		t.Fatalf("counter = %d, want %d: a concurrent write was lost", n, 8*20)
	}
	var migs int
	db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&migs)
	ms, _ := Migrations()
	if migs != len(ms) {
		t.Fatalf("concurrent opens applied %d migration records, want %d", migs, len(ms))
	}
}
