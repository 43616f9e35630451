// Package storetest opens the databases tests run against: a SQLite file
// in the test's temporary directory by default, or, when
// KEYHOLDER_TEST_POSTGRES holds a PostgreSQL URL (scripts/test.sh sets
// it for its second pass over the packages that touch the store), a fresh
// database on that server for each call, dropped when the test ends. Tests
// open their store through it, so the same tests prove both dialects.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"keyholder/backend/store"
)

// EnvPostgres names the variable that selects PostgreSQL: a URL of a
// server where the user may create databases.
const EnvPostgres = "KEYHOLDER_TEST_POSTGRES"

// Postgres reports whether tests run against PostgreSQL.
func Postgres() bool { return os.Getenv(EnvPostgres) != "" }

// Location returns where the database that belongs to dir lives:
// dir/keyholder.db, or the URL of a PostgreSQL database created on the
// first call for dir and remembered in dir/postgres-url, so that later
// calls, and helper processes given dir, open the same one (pass a nil t
// in a helper process: it only reads). Open it as often as the test needs
// (store.Open, or a command's --database).
func Location(t testing.TB, dir string) string {
	server := os.Getenv(EnvPostgres)
	if server == "" {
		return filepath.Join(dir, "keyholder.db")
	}
	remembered := filepath.Join(dir, "postgres-url")
	if b, err := os.ReadFile(remembered); err == nil {
		return string(b)
	}
	if t == nil {
		panic("storetest: no PostgreSQL database remembered in " + dir)
	}
	t.Helper()
	u := NewDatabase(t, server)
	if err := os.WriteFile(remembered, []byte(u), 0o600); err != nil {
		t.Fatalf("remember test database: %v", err)
	}
	return u
}

// Open opens a new database for the test (Location in a temporary
// directory) and closes it when the test ends.
func Open(t testing.TB, opts store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), Location(t, t.TempDir()), opts)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// NewDatabase creates an empty database (byte-wise collation, as the
// store requires) on the PostgreSQL server at serverURL and returns its
// URL; it is dropped when the test ends.
func NewDatabase(t testing.TB, serverURL string) string {
	t.Helper()
	ctx := context.Background()
	var b [6]byte
	rand.Read(b[:])
	name := "kh_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatalf("test PostgreSQL URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Server returns a PostgreSQL server URL for tests that need one whatever
// the dialect of the run (the schema comparison, the replica tests):
// KEYHOLDER_TEST_POSTGRES, or else a private server that Server starts
// once per test binary from Debian's postgresql package (initdb, pg_ctl as
// an unprivileged user when run as root). Without the package the test
// fails under CI=true and is skipped otherwise.
func Server(t testing.TB) string {
	t.Helper()
	if s := os.Getenv(EnvPostgres); s != "" {
		return s
	}
	private.once.Do(func() { private.url, private.err = startServer() })
	if private.err != nil {
		if os.Getenv("CI") == "" && private.missing {
			t.Skipf("PostgreSQL server: %v (install Debian's postgresql package)", private.err)
		}
		t.Fatalf("PostgreSQL server: %v", private.err)
	}
	return private.url
}

var private struct {
	once    sync.Once
	url     string
	err     error
	missing bool
	stop    func()
}

// Stop stops the private server Server started, if any (call it from
// TestMain after m.Run).
func Stop() {
	if private.stop != nil {
		private.stop()
	}
}

// BinDir is the directory of Debian's PostgreSQL server programs (the
// newest version installed), or "" if there is none.
func BinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

func startServer() (string, error) {
	bin := BinDir()
	if bin == "" {
		private.missing = true
		return "", fmt.Errorf("no /usr/lib/postgresql/*/bin/pg_ctl")
	}
	dir, err := os.MkdirTemp("", "keyholder-pg-")
	if err != nil {
		return "", err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// The server refuses to run as root.
		u, err := user.Lookup("nobody")
		if err != nil {
			return "", fmt.Errorf("find an unprivileged user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"); err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// The server runs as this process's child and dies with it
	// (Pdeathsig), so a test binary that crashes leaves no server behind.
	srv := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(port),
		"-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300")
	srv.Dir = dir
	srv.Env = append(os.Environ(), "LC_ALL=C")
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return "", err
	}
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return "", fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); logf.Close(); close(exited) }()
	private.stop = func() {
		srv.Process.Signal(syscall.SIGQUIT)
		<-exited
		os.RemoveAll(dir)
	}
	u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := pgx.Connect(context.Background(), u)
		if err == nil {
			c.Close(context.Background())
			return u, nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return "", fmt.Errorf("postgres exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("server did not accept connections: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
