package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// secondTx says what a second write transaction did while a first one was
// open: it committed ("ran") or it waited for an advisory lock ("waited").
func secondTx(t *testing.T, db *store.DB, first, second func(context.Context, func(*sql.Tx) error) error) string {
	t.Helper()
	ctx := context.Background()
	var got string
	err := first(ctx, func(*sql.Tx) error {
		done := make(chan error, 1)
		go func() {
			done <- second(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES ('second', 'x', '')`)
				return err
			})
		}()
		// Until one of the two is seen: a deadline only ends a test that
		// hangs, it decides nothing.
		deadline := time.Now().Add(time.Minute)
		for got == "" {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("second transaction: %v", err)
				}
				got = "ran"
				continue
			default:
			}
			var waiting int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting > 0 {
				got = "waited"
				// The second one finishes after the first commits; the
				// test's cleanup closes the database after this returns.
				t.Cleanup(func() {
					if err := <-done; err != nil {
						t.Errorf("second transaction after the first: %v", err)
					}
				})
				continue
			}
			if time.Now().After(deadline) {
				t.Fatal("the second transaction neither ran nor waited for a lock")
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func keyed(db *store.DB, keys ...string) func(context.Context, func(*sql.Tx) error) error {
	return func(ctx context.Context, fn func(*sql.Tx) error) error { return db.TxKeyed(ctx, keys, fn) }
}

// TestKeyedTransactions: on PostgreSQL, keyed write transactions (the
// release engine's group commits of replicas) run beside each other when
// their keys differ, wait for each other when they share one, and wait for
// (and are waited for by) every ordinary write transaction.
func TestKeyedTransactions(t *testing.T) {
	ctx := context.Background()
	location := storetest.NewDatabase(t, storetest.Server(t))
	open := func() *store.DB {
		db, err := store.Open(ctx, location, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	// Two handles, as two replicas have.
	a, b := open(), open()
	defer a.Close()
	defer b.Close()
	clean := func() {
		if _, err := a.ExecContext(ctx, `DELETE FROM settings WHERE key = 'second'`); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name          string
		first, second func(context.Context, func(*sql.Tx) error) error
		want          string
	}{
		{"different keys", keyed(a, "vm:a", "volume:1"), keyed(b, "vm:b", "volume:2"), "ran"},
		{"a shared key", keyed(a, "vm:a", "volume:1"), keyed(b, "volume:1", "vm:b"), "waited"},
		{"ordinary after keyed", keyed(a, "vm:a"), b.Tx, "waited"},
		{"keyed after ordinary", a.Tx, keyed(b, "vm:z"), "waited"},
		{"no keys after ordinary", a.Tx, keyed(b), "waited"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clean()
			if got := secondTx(t, a, c.first, c.second); got != c.want {
				t.Fatalf("the second transaction %s while the first was open; want %s", got, c.want)
			}
		})
	}
}

// TestKeyedTransactionSQLite: on SQLite a keyed transaction is an
// ordinary one: it commits what fn wrote and rolls back on an error.
func TestKeyedTransactionSQLite(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir()+"/k.db", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.TxKeyed(ctx, []string{"vm:a"}, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES ('k', '1', '')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err = db.TxKeyed(ctx, []string{"vm:a"}, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE settings SET value = '2' WHERE key = 'k'`); err != nil {
			return err
		}
		return sql.ErrTxDone
	})
	if err != sql.ErrTxDone {
		t.Fatalf("TxKeyed returned %v, want fn's error", err)
	}
	var v string
	if err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = 'k'`).Scan(&v); err != nil || v != "1" {
		t.Fatalf("value %q (%v), want the first transaction's 1", v, err)
	}
}
