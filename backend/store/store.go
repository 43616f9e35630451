// Package store is Keyholder's embedded database: one SQLite file (pure Go,
// modernc.org/sqlite) with versioned migrations compiled into the binary.
//
// Open applies every migration the file has not seen yet, each in its own
// transaction, and records it in schema_migrations. A file whose schema is
// newer than this binary, a file that is not a database, and a database that
// another running console holds are refused with ErrTooNew, ErrCorrupt and
// ErrInUse, so the caller can tell the officer what happened instead of
// failing half-way.
//
// Domain packages own their queries; they receive a *DB and run them through
// Tx, which retries nothing and commits only when the callback returns nil.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql migrations_pg/*.sql
var migrationFS embed.FS

// Errors that callers branch on.
var (
	// ErrTooNew means the database was written by a newer Keyholder.
	ErrTooNew = errors.New("database schema is newer than this Keyholder")
	// ErrCorrupt means the file is not a SQLite database or fails its integrity check.
	ErrCorrupt = errors.New("database file is corrupt or not a Keyholder database")
	// ErrInUse means another running console holds the database.
	ErrInUse = errors.New("database is in use by another running Keyholder console")
	// ErrBusy means another writer held the database past the busy timeout.
	ErrBusy = errors.New("database is busy")
	// ErrNotFound is returned by lookups that find no row.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a row with the same unique key exists already.
	ErrConflict = errors.New("a row with the same key exists already")
)

// Options controls how a database is opened. The zero value opens the file
// shared, for command-line tools that run beside a console.
type Options struct {
	// Exclusive takes the console lock: a second console on the same data
	// directory gets ErrInUse. Command-line tools leave it false and share the
	// file with a running console through SQLite's own locking.
	Exclusive bool
	// BusyTimeout is how long a statement waits for another writer; zero means 5s.
	BusyTimeout time.Duration
	// Now is the clock used for migration records; nil means time.Now.
	Now func() time.Time
	// DataDir is the console's data directory (its TLS files, backups'
	// carried files); empty means the SQLite file's directory. A console
	// on PostgreSQL sets it.
	DataDir string
}

// DB is an open Keyholder database.
type DB struct {
	*sql.DB
	path     string // the file, or the PostgreSQL URL without its password
	location string // what Open was given
	dialect  Dialect
	dataDir  string
	lock     *fileLock
	now      func() time.Time
}

// Migration is one embedded schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded SQLite migrations in order.
func Migrations() ([]Migration, error) { return MigrationsFor(SQLite) }

// MigrationsFor returns the embedded migrations of a dialect in order.
// PostgreSQL's history (migrations_pg) has the same versions and names as
// SQLite's and ends in the same schema (TestSchemasInLockStep).
func MigrationsFor(d Dialect) ([]Migration, error) {
	dir := "migrations"
	if d == Postgres {
		dir = "migrations_pg"
	}
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %q: name must be NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: bad version", name)
		}
		body, err := migrationFS.ReadFile(dir + "/" + name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("two migrations with version %d", ms[i].Version)
		}
	}
	return ms, nil
}

// LatestVersion is the schema version this binary writes.
func LatestVersion() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// Open opens (creating if needed) the database at path and migrates it.
// A path that is a postgres:// or postgresql:// URL opens that PostgreSQL
// database instead (see postgres.go); Exclusive has no meaning there, as
// several consoles share it.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if IsPostgresURL(path) {
		return openPostgres(ctx, path, opts)
	}
	if opts.DataDir == "" {
		opts.DataDir = filepath.Dir(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	var lk *fileLock
	if opts.Exclusive {
		var err error
		lk, err = lockFile(path + ".lock")
		if err != nil {
			return nil, err
		}
	}
	// Switching a new file to WAL needs a moment of exclusive access that
	// SQLite does not wait for; retry such a collision within the busy timeout.
	deadline := time.Now().Add(opts.BusyTimeout)
	db, err := open(ctx, path, opts)
	for err != nil && errors.Is(err, ErrBusy) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		db, err = open(ctx, path, opts)
	}
	if err != nil {
		lk.release()
		return nil, err
	}
	db.lock = lk
	return db, nil
}

func open(ctx context.Context, path string, opts Options) (*DB, error) {
	// WAL lets the officer UI read while a release commits; foreign keys keep
	// generations tied to their volumes; synchronous=FULL makes a commit
	// durable before a key or an audit entry is reported as written; the busy
	// timeout lets command-line tools share the file with a running console.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(1)")
	// Sub-journals (a savepoint's, a statement's) in memory: a write
	// transaction with many savepoints (the release engine's group commit)
	// would otherwise spill them to a temporary file, a write system call
	// per page.
	q.Add("_pragma", "temp_store(2)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	base, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, classify(err))
	}
	sdb := sql.OpenDB(&cachingConnector{base: base, size: stmtCacheSize})
	// Keep enough connections (and the statements they hold prepared, see
	// stmtcache.go) for the concurrent readers of a busy console: with
	// database/sql's default of two idle connections a burst of readers
	// opens and closes a SQLite connection per query. Idle ones go after a
	// while.
	sdb.SetMaxIdleConns(maxIdleConns)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	db := &DB{DB: sdb, path: path, location: path, dialect: SQLite, dataDir: opts.DataDir, now: opts.Now}
	if err := db.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, classify(err))
	}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return db, nil
}

// ConfigVersionSQL is an expression for the configuration version: a
// counter that every committed change to reference values, release
// policies or settings increases (triggers of migration 0006). A reader
// that selects it together with other rows may reuse what it parsed from
// that configuration until the number moves.
const ConfigVersionSQL = `(SELECT n FROM config_version)`

// maxIdleConns is how many idle connections the pool keeps.
const maxIdleConns = 16

// Path is the database file's location; for PostgreSQL, its URL without
// the password.
func (db *DB) Path() string { return db.path }

// Location is what Open was given (a file path or a PostgreSQL URL, with
// its password): open the same database again with it.
func (db *DB) Location() string { return db.location }

// DataDir is the console's data directory (Options.DataDir; "" for a
// PostgreSQL database opened without one).
func (db *DB) DataDir() string { return db.dataDir }

// Dialect is the SQL engine behind db.
func (db *DB) Dialect() Dialect { return db.dialect }

// Close closes the database and releases the console lock.
func (db *DB) Close() error {
	err := db.DB.Close()
	db.lock.release()
	return err
}

// Now is the database's clock.
func (db *DB) Now() time.Time { return db.now() }

// SchemaVersion is the highest migration applied to the file.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", classify(err))
	}
	return int(v.Int64), nil
}

// Tx runs fn in one write transaction. It commits when fn returns nil and
// rolls back otherwise, returning fn's error unchanged.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", classify(err))
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

func (db *DB) migrate(ctx context.Context) error {
	ms, err := MigrationsFor(db.dialect)
	if err != nil {
		return err
	}
	// In a write transaction: replicas starting together on one PostgreSQL
	// database create the table one after another.
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		intType := "INTEGER"
		if db.dialect == Postgres {
			intType = "BIGINT"
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    `+intType+` PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`)
		return err
	}); err != nil {
		return fmt.Errorf("prepare schema table: %w", classify(err))
	}
	cur, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if latest := ms[len(ms)-1].Version; cur > latest {
		return fmt.Errorf("%w: the file has schema version %d, this binary knows up to %d; use a newer Keyholder", ErrTooNew, cur, latest)
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			// Another process may have migrated since we looked; the
			// immediate transaction holds the write lock, so re-check here.
			var done int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&done); err != nil {
				return classify(err)
			}
			if done > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, classify(err))
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, db.now().UTC().Format(time.RFC3339Nano))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check and returns ErrCorrupt with
// SQLite's first complaint when the file is damaged.
// On PostgreSQL, whose server checks its own pages, it only reaches the
// database.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	if db.dialect == Postgres {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("integrity check: %w", classify(err))
		}
		return nil
	}
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("integrity check: %w", classify(err))
	}
	if res != "ok" {
		return fmt.Errorf("%w: %s", ErrCorrupt, res)
	}
	return nil
}

// classify maps SQLite's result codes and PostgreSQL's SQLSTATEs to the
// errors callers branch on.
func classify(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		if se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return fmt.Errorf("%w (%v)", ErrConflict, err)
		}
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w (%v)", ErrCorrupt, err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w (%v)", ErrBusy, err)
		}
		return err
	}
	return classifyPostgres(err)
}

// Classify is classify for domain packages that run their own statements.
func Classify(err error) error { return classify(err) }
