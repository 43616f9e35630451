package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// TestBatch runs statements as one batch in a transaction, on the dialect
// of the run: they run in order (a query sees the rows inserted before it
// in the batch), row counts and rows reach their callbacks, bools and
// NULLs scan, and a failing statement fails the batch with a classified
// error and stops the statements after it.
func TestBatch(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.Options{})
	var affected int64
	var n int
	var names []string
	var flag int
	var missing sql.NullString
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var b store.Batch
		b.Exec(`INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?)`, "a", "1", "t")
		b.ExecThen(func(rows int64) error { affected = rows; return nil },
			`INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?), (?, ?, ?)`, "b", "2", "t", "c", "3", "t")
		b.Query(func(scan func(...any) error) error { return scan(&n) }, `SELECT COUNT(*) FROM settings WHERE key IN ('a', 'b', 'c')`)
		b.Query(func(scan func(...any) error) error {
			var k string
			if err := scan(&k); err != nil {
				return err
			}
			names = append(names, k)
			return nil
		}, `SELECT key FROM settings WHERE key IN ('a', 'b', 'c') ORDER BY key`)
		b.Query(func(scan func(...any) error) error { return scan(&flag, &missing) },
			`SELECT EXISTS (SELECT 1 FROM settings WHERE key = ?), (SELECT value FROM settings WHERE key = 'nothing')`, "a")
		if b.Len() != 5 {
			t.Fatalf("batch holds %d statements, want 5", b.Len())
		}
		return store.RunBatch(ctx, tx, &b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if affected != 2 || n != 3 || len(names) != 3 || names[0] != "a" || names[2] != "c" || flag != 1 || missing.Valid {
		t.Fatalf("affected %d, count %d, names %v, flag %d, missing %+v", affected, n, names, flag, missing)
	}

	ran := false
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		var b store.Batch
		b.Exec(`INSERT INTO settings(key, value, updated_at) VALUES ('d', '4', 't')`)
		b.Exec(`INSERT INTO settings(key, value, updated_at) VALUES ('a', 'again', 't')`)
		b.ExecThen(func(int64) error { ran = true; return nil }, `INSERT INTO settings(key, value, updated_at) VALUES ('e', '5', 't')`)
		return store.RunBatch(ctx, tx, &b)
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("batch with a duplicate key: %v, want ErrConflict", err)
	}
	if ran {
		t.Fatal("a statement after the failing one ran")
	}
	var left int
	db.QueryRowContext(ctx, `SELECT COUNT(*) FROM settings WHERE key IN ('d', 'e')`).Scan(&left)
	if left != 0 {
		t.Fatalf("%d rows of the failed transaction were committed", left)
	}
}

// TestBatchAtCommit: statements left for the commit are in the database
// once the transaction commits and not before another transaction can see
// them; when one fails, the commit fails and nothing of the transaction is
// kept; a rolled-back transaction drops them.
func TestBatchAtCommit(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.Options{})
	count := func(key string) int {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM settings WHERE key = ?`, key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES ('first', '1', 't')`); err != nil {
			return err
		}
		var b store.Batch
		b.Exec(`INSERT INTO settings(key, value, updated_at) VALUES ('last', '2', 't')`)
		return store.RunBatchAtCommit(ctx, tx, &b)
	}); err != nil {
		t.Fatal(err)
	}
	if count("first") != 1 || count("last") != 1 {
		t.Fatalf("after commit: first %d, last %d", count("first"), count("last"))
	}

	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES ('x', '1', 't')`); err != nil {
			return err
		}
		var b store.Batch
		b.Exec(`INSERT INTO settings(key, value, updated_at) VALUES ('y', '1', 't')`)
		b.Exec(`INSERT INTO settings(key, value, updated_at) VALUES ('last', 'again', 't')`)
		return store.RunBatchAtCommit(ctx, tx, &b)
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit with a failing statement: %v, want ErrConflict", err)
	}
	if count("x") != 0 || count("y") != 0 {
		t.Fatalf("a failed commit kept x %d, y %d", count("x"), count("y"))
	}

	_ = db.Tx(ctx, func(tx *sql.Tx) error {
		var b store.Batch
		b.Exec(`INSERT INTO settings(key, value, updated_at) VALUES ('dropped', '1', 't')`)
		if err := store.RunBatchAtCommit(ctx, tx, &b); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	if count("dropped") != 0 {
		t.Fatal("statements left for the commit of a rolled-back transaction ran")
	}
	// The connections are usable afterwards.
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES ('after', '1', 't')`)
		return err
	}); err != nil || count("after") != 1 {
		t.Fatalf("after the failures: %v", err)
	}
}
