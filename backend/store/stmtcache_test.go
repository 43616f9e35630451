package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"modernc.org/sqlite"
)

func openTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "keyholder.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// onConn runs fn with one connection of db and its statement cache.
func onConn(t *testing.T, db *DB, fn func(c *sql.Conn, cache func() (stmtCacheStats, int))) {
	t.Helper()
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cache := func() (st stmtCacheStats, n int) {
		err := c.Raw(func(dc any) error {
			cc, ok := dc.(*cachingConn)
			if !ok {
				return fmt.Errorf("driver connection is %T, not the caching one", dc)
			}
			cc.mu.Lock()
			defer cc.mu.Unlock()
			st, n = cc.stats, len(cc.stmts)
			if cc.lru.Len() != n {
				return fmt.Errorf("cache map holds %d statements, its LRU list %d", n, cc.lru.Len())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return st, n
	}
	fn(c, cache)
}

func TestStatementCacheReusesPreparedStatements(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	onConn(t, db, func(c *sql.Conn, cache func() (stmtCacheStats, int)) {
		before, _ := cache()
		for i := 0; i < 50; i++ {
			if _, err := c.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, 'now')`, fmt.Sprint("k", i), i); err != nil {
				t.Fatal(err)
			}
			var v int
			if err := c.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, fmt.Sprint("k", i)).Scan(&v); err != nil || v != i {
				t.Fatalf("read back k%d = %d, %v", i, v, err)
			}
		}
		st, _ := cache()
		if got := st.prepares - before.prepares; got != 2 {
			t.Errorf("prepared %d statements for two query strings run 50 times each, want 2", got)
		}
		if got := st.hits - before.hits; got != 98 {
			t.Errorf("%d cache hits, want 98", got)
		}
	})
}

// A query run again while the rows of the same query string are still open
// (nested) must not reuse, and so reset, the statement those rows iterate.
func TestStatementCacheNestedSameQuery(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := db.Exec(`INSERT INTO settings(key, value, updated_at) VALUES (?, ?, 'now')`, fmt.Sprint("n", i), i); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT key, value FROM settings WHERE key LIKE ? ORDER BY key`
	onConn(t, db, func(c *sql.Conn, cache func() (stmtCacheStats, int)) {
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		rows, err := tx.QueryContext(ctx, q, "n%")
		if err != nil {
			t.Fatal(err)
		}
		var outer []string
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			outer = append(outer, k)
			var k2, v2 string
			if err := tx.QueryRowContext(ctx, q, k).Scan(&k2, &v2); err != nil || k2 != k || v2 != v {
				t.Fatalf("nested query for %s: %s %s %v", k, k2, v2, err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if fmt.Sprint(outer) != "[n0 n1 n2 n3 n4]" {
			t.Fatalf("outer rows %v: the nested query disturbed them", outer)
		}
		tx.Rollback()
		st, _ := cache()
		if st.bypasses != 5 {
			t.Errorf("%d nested runs bypassed the cache, want 5", st.bypasses)
		}
		// Closing the outer rows gave the statement back.
		before := st.hits
		var n int
		if err := c.QueryRowContext(ctx, q, "n1").Scan(new(string), &n); err != nil || n != 1 {
			t.Fatalf("after the rows closed: %d %v", n, err)
		}
		if st, _ := cache(); st.hits != before+1 {
			t.Errorf("the statement was not reused after its rows closed")
		}
	})
}

func TestStatementCacheEvictsLeastRecentlyUsed(t *testing.T) {
	ctx := context.Background()
	dsn := "file:" + filepath.Join(t.TempDir(), "evict.db")
	base, err := sqlite.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	sdb := sql.OpenDB(&cachingConnector{base: base, size: 4})
	defer sdb.Close()
	sdb.SetMaxOpenConns(1)
	conn, err := sdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stats := func() (st stmtCacheStats, n int) {
		conn.Raw(func(dc any) error {
			cc := dc.(*cachingConn)
			st, n = cc.stats, len(cc.stmts)
			return nil
		})
		return
	}
	// Rows left open keep their statement out of eviction.
	const pinnedQuery = `SELECT 'pinned' UNION ALL SELECT 'still here'`
	pinned, err := conn.QueryContext(ctx, pinnedQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close() // before conn.Close, on failure too
	for i := 0; i < 10; i++ {
		var v int
		if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&v); err != nil || v != i {
			t.Fatalf("SELECT %d = %d, %v", i, v, err)
		}
	}
	st, n := stats()
	if n != 4 || st.evictions != 7 {
		t.Fatalf("cache of 4 after 11 statements: %d kept, %d evicted; want 4 and 7", n, st.evictions)
	}
	conn.Raw(func(dc any) error {
		if dc.(*cachingConn).stmts[pinnedQuery] == nil {
			t.Error("the statement of open rows was evicted (and finalized under them)")
		}
		return nil
	})
	var got []string
	for pinned.Next() {
		var s string
		pinned.Scan(&s)
		got = append(got, s)
	}
	pinned.Close()
	if fmt.Sprint(got) != "[pinned still here]" {
		t.Fatalf("rows of a statement kept busy: %v", got)
	}
	// The most recent ones are still prepared, the oldest is prepared anew.
	before, _ := stats()
	conn.QueryRowContext(ctx, `SELECT 9`).Scan(new(int))
	conn.QueryRowContext(ctx, `SELECT 0`).Scan(new(int))
	after, _ := stats()
	if after.hits != before.hits+1 || after.prepares != before.prepares+1 {
		t.Fatalf("hits %d→%d, prepares %d→%d; want one of each", before.hits, after.hits, before.prepares, after.prepares)
	}
}

func TestStatementCacheSkipsScriptsAndErrors(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	onConn(t, db, func(c *sql.Conn, cache func() (stmtCacheStats, int)) {
		_, n0 := cache()
		if _, err := c.ExecContext(ctx, `CREATE TABLE a(x); CREATE TABLE b(y);`); err != nil {
			t.Fatal(err)
		}
		var tables int
		c.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name IN ('a', 'b')`).Scan(&tables)
		if tables != 2 {
			t.Fatalf("a script ran %d of its 2 statements", tables)
		}
		if _, err := c.ExecContext(ctx, `INSERT INTO nosuch VALUES (1)`); err == nil {
			t.Fatal("insert into a missing table succeeded")
		}
		if _, n := cache(); n != n0+1 {
			t.Fatalf("cache grew by %d, want 1 (only the COUNT query)", n-n0)
		}
		// The statement that failed to prepare works once its table exists.
		if _, err := c.ExecContext(ctx, `CREATE TABLE nosuch(v)`); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, `INSERT INTO nosuch VALUES (1)`); err != nil {
			t.Fatal(err)
		}
	})
}

// A cached statement follows schema changes (SQLite prepares it again), and
// a failing execution (a constraint) leaves it usable.
func TestStatementCacheSchemaChangeAndFailures(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	onConn(t, db, func(c *sql.Conn, cache func() (stmtCacheStats, int)) {
		if _, err := c.ExecContext(ctx, `CREATE TABLE s(k TEXT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		const ins = `INSERT INTO s(k) VALUES (?)`
		if _, err := c.ExecContext(ctx, ins, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, ins, "a"); err == nil {
			t.Fatal("duplicate key inserted")
		}
		if _, err := c.ExecContext(ctx, ins, "b"); err != nil {
			t.Fatalf("the cached insert after a constraint failure: %v", err)
		}
		cols := func() []string {
			rows, err := c.QueryContext(ctx, `SELECT * FROM s ORDER BY k`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			cs, _ := rows.Columns()
			return cs
		}
		if got := fmt.Sprint(cols()); got != "[k]" {
			t.Fatalf("columns %s", got)
		}
		if _, err := c.ExecContext(ctx, `ALTER TABLE s ADD COLUMN v TEXT NOT NULL DEFAULT 'x'`); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(cols()); got != "[k v]" {
			t.Fatalf("columns after ALTER TABLE: %s (a stale statement)", got)
		}
	})
}

func TestStatementCacheTransactionsAndCancel(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	const ins = `INSERT INTO settings(key, value, updated_at) VALUES (?, 'v', 'now')`
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, ins, "rolled-back"); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("Tx returned nil")
	}
	if err := db.Tx(ctx, func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, ins, "kept"); return err }); err != nil {
		t.Fatal(err)
	}
	var keys int
	db.QueryRow(`SELECT COUNT(*) FROM settings WHERE key IN ('rolled-back', 'kept')`).Scan(&keys)
	if keys != 1 {
		t.Fatalf("%d rows, want only the committed one", keys)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.ExecContext(cctx, ins, "cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled exec: %v", err)
	}
	if _, err := db.ExecContext(ctx, ins, "after"); err != nil {
		t.Fatalf("exec after a cancelled one: %v", err)
	}
}

func TestStatementCacheClosed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "keyholder.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const q = `SELECT COUNT(*) FROM settings WHERE key = ?`
	var n int
	if err := db.QueryRowContext(ctx, q, "x").Scan(&n); err != nil {
		t.Fatal(err)
	}
	// A connection closed with statements in its cache refuses further use
	// (database/sql then takes another one) instead of running a finalized
	// statement.
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cc *cachingConn
	c.Raw(func(dc any) error { cc = dc.(*cachingConn); return nil })
	if err := c.QueryRowContext(ctx, q, "x").Scan(&n); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := db.Close(); err != nil {
		t.Fatalf("close with cached statements: %v", err)
	}
	cc.mu.Lock()
	left := len(cc.stmts)
	cc.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d statements left in a closed connection's cache", left)
	}
	if _, err := cc.QueryContext(ctx, q, []driver.NamedValue{{Ordinal: 1, Value: "x"}}); !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("query on a closed connection: %v, want driver.ErrBadConn", err)
	}
	if err := db.QueryRowContext(ctx, q, "x").Scan(&n); err == nil {
		t.Fatal("query on a closed database succeeded")
	}
}

// Many goroutines share the pool's connections and their caches: readers
// of several query strings, and writers in transactions (run with -race).
func TestStatementCacheConcurrentUse(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	const workers, rounds = 16, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				err := db.Tx(ctx, func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, 'now')`, key, i)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				var v int
				if err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v); err != nil || v != i {
					errs <- fmt.Errorf("%s = %d, %v", key, v, err)
					return
				}
				rows, err := db.QueryContext(ctx, `SELECT key FROM settings WHERE key LIKE ? ORDER BY key`, fmt.Sprintf("w%d-%%", w))
				if err != nil {
					errs <- err
					return
				}
				n := 0
				for rows.Next() {
					n++
				}
				rows.Close()
				if n != i+1 {
					errs <- fmt.Errorf("worker %d sees %d of its rows, want %d", w, n, i+1)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
