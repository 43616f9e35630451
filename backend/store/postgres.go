package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
)

// PostgreSQL. Several console replicas share one database; what SQLite
// gives a single process by its file lock is made explicit here:
//
//   - Every write transaction (database/sql BeginTx without ReadOnly) takes
//     one transaction-scoped advisory lock first, as SQLite's BEGIN
//     IMMEDIATE takes the write lock: write transactions of all replicas
//     run one after another, so the read-then-write code of the domain
//     packages (the audit head, a generation number, a vote count) keeps
//     the meaning it has on SQLite. Reads outside a transaction never wait.
//   - Keyed write transactions (TxKeyed: the release engine's group
//     commits) share the writer lock with each other instead, and take one
//     advisory lock per key they name (a VM, a volume, a launch), all at
//     their start, in ascending order: keyed transactions of different
//     replicas on different keys run at once, while an ordinary write
//     transaction still excludes every one of them.
//   - Lock waits end after Options.BusyTimeout (lock_timeout) with ErrBusy,
//     like SQLite's busy timeout.
//   - Named locks (Lock) serialise one concern explicitly; on SQLite they
//     cost nothing, since write transactions are serial there already.
//
// The database must sort text byte-wise (LC_COLLATE C): times, IDs and
// hashes are text, and their order is the byte order SQLite compares by.

// LockName names an advisory lock taken with Lock.
type LockName int64

// Advisory lock keys ("kh" in the high bytes keeps them apart from another
// application's on a shared server).
const (
	lockWriter LockName = 0x6b68_0000_0001
	// LockAudit serialises audit appends: the chain never forks.
	LockAudit LockName = 0x6b68_0000_0002
)

// lockSQL takes a transaction-scoped advisory lock. SQLite has the same
// function, registered below as a no-op, so one statement serves both.
const lockSQL = `SELECT pg_advisory_xact_lock(?)`

func init() {
	// On SQLite every write transaction holds the database's write lock
	// from its start (BEGIN IMMEDIATE): a named lock inside one is already
	// held, and the function only has to exist.
	sqlite.MustRegisterScalarFunction("pg_advisory_xact_lock", 1, func(*sqlite.FunctionContext, []driver.Value) (driver.Value, error) {
		return nil, nil
	})
}

// Lock takes the named advisory lock for the rest of tx (PostgreSQL); it is
// released when tx commits or rolls back. On SQLite it does nothing: the
// write transaction is serial already.
func Lock(ctx context.Context, tx *sql.Tx, name LockName) error {
	if _, err := tx.ExecContext(ctx, lockSQL, int64(name)); err != nil {
		return fmt.Errorf("take lock %d: %w", name, classify(err))
	}
	return nil
}

// LockBatch queues taking the named advisory lock (Lock) in b: the
// statements queued after it run once it is held.
func LockBatch(b *Batch, name LockName) { b.Exec(lockSQL, int64(name)) }

// maxPostgresConns bounds one replica's connections to the server.
const maxPostgresConns = 32

func openPostgres(ctx context.Context, location string, opts Options) (*DB, error) {
	shown := redactURL(location)
	cfg, err := pgx.ParseConfig(location)
	if err != nil {
		return nil, fmt.Errorf("open database %s: bad PostgreSQL URL: %w", shown, errors.Unwrap(err))
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "keyholder"
	}
	sdb := sql.OpenDB(&pgConnector{base: stdlib.GetConnector(*cfg)})
	sdb.SetMaxOpenConns(maxPostgresConns)
	sdb.SetMaxIdleConns(maxIdleConns)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	db := &DB{DB: sdb, path: shown, location: location, dialect: Postgres, dataDir: opts.DataDir, now: opts.Now}
	if err := db.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open database %s: %w", shown, classify(err))
	}
	var collate string
	if err := db.QueryRowContext(ctx, `SELECT datcollate FROM pg_database WHERE datname = current_database()`).Scan(&collate); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open database %s: %w", shown, classify(err))
	}
	switch strings.ToLower(collate) {
	case "c", "posix", "c.utf-8", "c.utf8", "ucs_basic":
	default:
		sdb.Close()
		return nil, fmt.Errorf("open database %s: its collation is %q; Keyholder compares text byte-wise and needs a database created with LC_COLLATE C (createdb --locale=C --template=template0 NAME)", shown, collate)
	}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return db, nil
}

// redactURL is location without its password, for messages.
func redactURL(location string) string {
	u, err := url.Parse(location)
	if err != nil {
		return "(PostgreSQL URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// classifyPostgres maps PostgreSQL's SQLSTATEs to the errors callers
// branch on.
func classifyPostgres(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w (%v)", ErrConflict, err)
		case "40001", "40P01", "55P03", "57014": // serialization_failure, deadlock_detected, lock_not_available, query_canceled
			return fmt.Errorf("%w (%v)", ErrBusy, err)
		case "XX001", "XX002": // data_corrupted, index_corrupted
			return fmt.Errorf("%w (%v)", ErrCorrupt, err)
		}
	}
	return err
}

// pgInner is what pgx's database/sql connection implements.
type pgInner interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.NamedValueChecker
}

// pgConnector opens pgx connections and wraps them in pgConn.
type pgConnector struct{ base driver.Connector }

func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{inner: dc.(pgInner)}, nil
}

func (c *pgConnector) Driver() driver.Driver { return c.base.Driver() }

// pgConn translates SQLite's spelling (rewriteForPostgres), passes bools as
// 0/1, returns bools as 0/1, and serialises write transactions.
type pgConn struct {
	inner pgInner
	tx    *pgWriteTx // the write transaction open on it (BeginTx), if any
}

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.flushPending(ctx); err != nil {
		return nil, err
	}
	return c.inner.PrepareContext(ctx, rewriteForPostgres(query))
}

func (c *pgConn) Close() error { return c.inner.Close() }

func (c *pgConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	pc, isPgx := c.inner.(interface{ Conn() *pgx.Conn })
	if opts.ReadOnly || opts.Isolation != driver.IsolationLevel(sql.LevelDefault) || !isPgx {
		return c.beginInner(ctx, opts)
	}
	// A write transaction: BEGIN and its locks in one round trip (the
	// simple protocol runs both statements of one string; the lock keys are
	// numbers, written into it).
	lock := fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, int64(lockWriter))
	if keys, keyed := ctx.Value(keyedTxKey{}).(keySet); keyed {
		lock = fmt.Sprintf(keyedLockSQL, int64(lockWriter), int64(lockKeyClass), "'"+keys.array()+"'")
	}
	conn := pc.Conn()
	if _, err := conn.Exec(ctx, "BEGIN; "+lock); err != nil {
		if conn.PgConn().TxStatus() != 'I' {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		if pgconn.SafeToRetry(err) {
			return nil, driver.ErrBadConn
		}
		return nil, err
	}
	tx := &pgWriteTx{c: c, conn: conn}
	c.tx = tx
	return tx, nil
}

// keyedLockSQL takes the writer lock shared, then every key's lock in
// ascending order (the sub-select with OFFSET 0 sorts before the locks are
// taken), in one statement: two keyed transactions never wait for each
// other in a cycle.
const keyedLockSQL = `SELECT pg_advisory_xact_lock_shared(%d), (SELECT COUNT(pg_advisory_xact_lock(%d, k)) FROM
		(SELECT DISTINCT k FROM unnest(CAST(%s AS int4[])) AS u(k) ORDER BY k OFFSET 0) AS s)`

// beginInner begins a transaction through pgx's own database/sql
// connection: read-only ones, and write ones of another isolation level
// (which then take their locks in a statement of their own).
func (c *pgConn) beginInner(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.inner.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		return tx, nil
	}
	lock := fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, int64(lockWriter))
	if keys, keyed := ctx.Value(keyedTxKey{}).(keySet); keyed {
		lock = fmt.Sprintf(keyedLockSQL, int64(lockWriter), int64(lockKeyClass), "'"+keys.array()+"'")
	}
	if _, err := c.inner.ExecContext(ctx, lock, nil); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// pgWriteTx is a write transaction begun by pgConn.BeginTx. Statements a
// caller leaves for the commit (RunBatchAtCommit) go out with COMMIT.
type pgWriteTx struct {
	c        *pgConn
	conn     *pgx.Conn
	atCommit []*Batch
	done     bool
	// deferring (DeferWrites): batches of writes only wait in pending and
	// go out in front of the next batch or statement, or with the commit.
	deferring bool
	pending   []*Batch
}

// takePending returns the pending writes followed by b's statements, as
// one batch, and empties pending.
func (t *pgWriteTx) takePending(b *Batch) *Batch {
	if len(t.pending) == 0 {
		return b
	}
	var all Batch
	for _, p := range t.pending {
		all.items = append(all.items, p.items...)
	}
	if b != nil {
		all.items = append(all.items, b.items...)
	}
	t.pending = nil
	return &all
}

func (t *pgWriteTx) finish() {
	t.done = true
	if t.c.tx == t {
		t.c.tx = nil
	}
}

func (t *pgWriteTx) Commit() error {
	defer t.finish()
	ctx := context.Background()
	all := t.takePending(&Batch{})
	for _, b := range t.atCommit {
		all.items = append(all.items, b.items...)
	}
	t.atCommit = nil
	committed := false
	all.ExecThenTag(func(tag string) error {
		// A transaction that failed answers COMMIT with ROLLBACK.
		if tag != "COMMIT" {
			return fmt.Errorf("commit: the transaction was rolled back (%s)", tag)
		}
		committed = true
		return nil
	}, "COMMIT")
	err := runBatchPostgres(ctx, t.conn, all)
	if err != nil && !committed && t.conn.PgConn().TxStatus() != 'I' {
		t.conn.Exec(ctx, "ROLLBACK")
	}
	return err
}

func (t *pgWriteTx) Rollback() error {
	defer t.finish()
	t.atCommit, t.pending = nil, nil
	_, err := t.conn.Exec(context.Background(), "ROLLBACK")
	return err
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if b, ok := isBatch(query, args); ok {
		pc, ok := c.inner.(interface{ Conn() *pgx.Conn })
		if !ok {
			return nil, errors.New("run batch: not a pgx connection")
		}
		if t := c.openTx(); t != nil && t.deferring {
			if b.writesOnly() {
				t.pending = append(t.pending, b)
				return driver.RowsAffected(0), nil
			}
			b = t.takePending(b)
		}
		return driver.RowsAffected(0), runBatchPostgres(ctx, pc.Conn(), b)
	}
	if b, ok := isBatchAtCommit(query, args); ok {
		t := c.openTx()
		if t == nil {
			// No transaction of ours to carry them: run them now.
			return c.ExecContext(ctx, batchQuery, args)
		}
		t.atCommit = append(t.atCommit, b)
		return driver.RowsAffected(0), nil
	}
	if query == deferWritesQuery {
		if t := c.openTx(); t != nil {
			t.deferring = true
		}
		return driver.RowsAffected(0), nil
	}
	if err := c.flushPending(ctx); err != nil {
		return nil, err
	}
	return c.inner.ExecContext(ctx, rewriteForPostgres(query), args)
}

// openTx is the write transaction open on c that pgConn began, or nil.
func (c *pgConn) openTx() *pgWriteTx {
	if c.tx == nil || c.tx.done {
		return nil
	}
	return c.tx
}

// flushPending sends the writes DeferWrites left waiting, before a
// statement that is not a batch runs.
func (c *pgConn) flushPending(ctx context.Context) error {
	t := c.openTx()
	if t == nil || len(t.pending) == 0 {
		return nil
	}
	return runBatchPostgres(ctx, t.conn, t.takePending(nil))
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.flushPending(ctx); err != nil {
		return nil, err
	}
	rows, err := c.inner.QueryContext(ctx, rewriteForPostgres(query), args)
	if err != nil {
		return nil, err
	}
	return &pgRows{Rows: rows}, nil
}

// CheckNamedValue passes a bool as the integer SQLite would store, and a
// *Batch to ExecContext (RunBatch).
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if checkBatchArg(nv) {
		return nil
	}
	if b, ok := nv.Value.(bool); ok {
		if b {
			nv.Value = int64(1)
		} else {
			nv.Value = int64(0)
		}
		return nil
	}
	return c.inner.CheckNamedValue(nv)
}

func (c *pgConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *pgConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *pgConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// pgRows returns PostgreSQL's booleans as SQLite's 0 and 1.
type pgRows struct{ driver.Rows }

func (r *pgRows) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return err
	}
	for i, v := range dest {
		if b, ok := v.(bool); ok {
			if b {
				dest[i] = int64(1)
			} else {
				dest[i] = int64(0)
			}
		}
	}
	return nil
}

// Snapshot writes a consistent copy of the whole database to a new SQLite
// file at path: VACUUM INTO on SQLite; on PostgreSQL every table's rows,
// read in one repeatable-read transaction, into a file migrated to the
// same schema. A backup of either is therefore one SQLite file, which
// restores into an embedded console.
func (db *DB) Snapshot(ctx context.Context, path string) error {
	if db.dialect == SQLite {
		if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
			return fmt.Errorf("snapshot: %w", classify(err))
		}
		return nil
	}
	dst, err := Open(ctx, path, Options{Exclusive: true, Now: db.now})
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer dst.Close()
	src, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("snapshot: %w", classify(err))
	}
	defer src.Rollback()
	var tables []string
	rows, err := dst.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name = 'config_version', name`)
	if err != nil {
		return fmt.Errorf("snapshot: %w", classify(err))
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	return dst.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
			return err
		}
		for _, table := range tables {
			var cols []string
			crows, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
			if err != nil {
				return err
			}
			for crows.Next() {
				var c string
				crows.Scan(&c)
				cols = append(cols, c)
			}
			crows.Close()
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table); err != nil {
				return fmt.Errorf("snapshot %s: %w", table, err)
			}
			list := `"` + strings.Join(cols, `", "`) + `"`
			ins := `INSERT INTO ` + table + `(` + list + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
			srows, err := src.QueryContext(ctx, `SELECT `+list+` FROM `+table)
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", table, classify(err))
			}
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for srows.Next() {
				if err := srows.Scan(ptrs...); err != nil {
					srows.Close()
					return fmt.Errorf("snapshot %s: %w", table, err)
				}
				if _, err := tx.ExecContext(ctx, ins, vals...); err != nil {
					srows.Close()
					return fmt.Errorf("snapshot %s: %w", table, classify(err))
				}
			}
			err = srows.Err()
			srows.Close()
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", table, classify(err))
			}
		}
		return nil
	})
}
