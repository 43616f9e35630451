package custody

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyholder/backend/shamir"
	"keyholder/backend/store"
)

// snapshot captures what must not change when an operation is refused.
func snapshot(t *testing.T, s *Service) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT id, role, wrapped_master, failed_attempts FROM officers ORDER BY id`,
		`SELECT volume_id, status, wrapped, generation FROM volume_generations ORDER BY volume_id, generation`,
	} {
		rows, err := s.DB().Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var a, c string
			var n int64
			var blob []byte
			if err := rows.Scan(&a, &c, &blob, &n); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %s %x %d,", a, c, blob, n)
		}
		rows.Close()
		b.WriteByte('|')
	}
	return b.String()
}

func TestRecoverFromShares(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	id, _, secret, _ := s.CreateVolume(ctx, "officer:alice", "", "disk")
	shares, err := s.SplitRecovery(ctx, "alice", 3, 5)
	if err != nil || len(shares) != 5 {
		t.Fatalf("SplitRecovery: %d shares, %v", len(shares), err)
	}
	other, _ := newTestService(t)
	otherShares, _ := other.SplitRecovery(ctx, "alice", 2, 2)

	typo := []byte(shares[1])
	if typo[12] == 'Q' {
		typo[12] = 'R'
	} else {
		typo[12] = 'Q'
	}
	newPass := []byte("recovered passphrase")
	before := snapshot(t, s)
	s.Lock()
	for _, c := range []struct {
		name   string
		shares []string
		want   error
	}{
		{"M-1 shares", shares[:2], shamir.ErrTooFewShares},
		{"share with a typo", []string{shares[0], string(typo), shares[2]}, shamir.ErrChecksum},
		{"share of another split", []string{shares[0], shares[1], otherShares[0]}, shamir.ErrMismatch},
		{"another console's shares", otherShares, ErrWrongShares},
		{"not a share", []string{"hello", shares[1], shares[2]}, shamir.ErrFormat},
		{"same share three times", []string{shares[0], shares[0], shares[0]}, shamir.ErrDuplicate},
	} {
		if _, err := s.Recover(ctx, c.shares, "alice", newPass); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if s.Unlocked() {
			t.Fatalf("%s: the service unlocked", c.name)
		}
	}
	if after := snapshot(t, s); after != before {
		t.Fatal("a refused recovery changed the officers or secrets")
	}
	// The wrong share is found and named before combining.
	if _, err := s.Recover(ctx, []string{shares[0], string(typo), shares[2]}, "alice", newPass); err == nil || !strings.Contains(err.Error(), "share 2") {
		t.Errorf("typo error does not name the share: %v", err)
	}
	if _, err := s.Recover(ctx, []string{shares[4], shares[0], shares[2]}, "alice", newPass); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReleaseSecret(ctx, id, 1)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("secret after recovery: %v", err)
	}
	s.Lock()
	if _, err := s.Unlock(ctx, "alice", newPass); err != nil {
		t.Fatalf("new passphrase after recovery: %v", err)
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMovedSecretDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	a, _, _, _ := s.CreateVolume(ctx, "officer:alice", "", "a")
	b, _, _, _ := s.CreateVolume(ctx, "officer:alice", "", "b")
	s.Rotate(ctx, "officer:alice", a)
	for _, c := range []struct{ name, sql string }{
		{"another volume's secret", `UPDATE volume_generations SET wrapped = (SELECT wrapped FROM volume_generations WHERE volume_id = '` + b + `') WHERE volume_id = '` + a + `' AND generation = 1`},
		{"another generation's secret", `UPDATE volume_generations SET wrapped = (SELECT wrapped FROM volume_generations WHERE volume_id = '` + a + `' AND generation = 2) WHERE volume_id = '` + a + `' AND generation = 1`},
	} {
		if _, err := s.DB().Exec(c.sql); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReleaseSecret(ctx, a, 1); err == nil || !strings.Contains(err.Error(), "altered or moved") {
			t.Errorf("%s: err = %v, want an unwrap failure", c.name, err)
		}
	}
}

func writeBackupFile(t *testing.T, s *Service) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.WriteBackup(context.Background(), "officer:alice", &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	id, _, secret, _ := s.CreateVolume(ctx, "officer:alice", "", "disk")
	// Enough volumes that the snapshot spans several chunks.
	for i := 0; i < 300; i++ {
		_, _, sec, err := s.CreateVolume(ctx, "officer:alice", "", strings.Repeat("x", 150))
		if err != nil {
			t.Fatal(err)
		}
		clear(sec)
	}
	file := writeBackupFile(t, s)
	if len(file) < 3*backupChunk {
		t.Fatalf("backup is only %d bytes; the test wants several chunks", len(file))
	}
	pass := []byte("correct horse battery")

	dir := t.TempDir()
	dst := filepath.Join(dir, "keyholder.db")
	info, err := RestoreBackup(ctx, bytes.NewReader(file), dst, RestoreOptions{Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	if info.ConsoleID == "" || len(info.Officers) != 1 {
		t.Fatalf("info = %+v", info)
	}
	r := New(openRestored(t, dir), Options{KDF: testKDF})
	if _, err := r.Unlock(ctx, "alice", pass); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReleaseSecret(ctx, id, 1)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("secret after restore: %v", err)
	}
	if rep, err := r.VerifyAudit(ctx); err != nil || rep.Entries < 300 {
		t.Fatalf("audit after restore: %+v %v", rep, err)
	}
}

func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	for i := 0; i < 150; i++ {
		s.CreateVolume(ctx, "officer:alice", "", strings.Repeat("y", 200))
	}
	file := writeBackupFile(t, s)
	other, _ := newTestService(t)
	otherFile := writeBackupFile(t, other)
	pass := []byte("correct horse battery")

	flip := func(off int) []byte {
		b := bytes.Clone(file)
		b[off] ^= 0x01
		return b
	}
	// Find where the header ends to tamper with the header and the chunks.
	hlen := len(backupMagic) + 4 + int(uint32(file[len(backupMagic)])<<24|uint32(file[len(backupMagic)+1])<<16|uint32(file[len(backupMagic)+2])<<8|uint32(file[len(backupMagic)+3]))
	for _, c := range []struct {
		name string
		data []byte
		opts RestoreOptions
		want error
	}{
		{"wrong passphrase", file, RestoreOptions{Passphrase: []byte("not the passphrase")}, ErrWrongPassphrase},
		{"unknown officer", file, RestoreOptions{Officer: "mallory", Passphrase: pass}, ErrWrongPassphrase},
		{"not a backup", []byte("SQLite format 3\x00 and more"), RestoreOptions{Passphrase: pass}, ErrNotBackup},
		{"empty file", nil, RestoreOptions{Passphrase: pass}, ErrNotBackup},
		{"header cut", file[:hlen-5], RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
		{"header edited", flip(hlen - 3), RestoreOptions{Passphrase: pass}, nil}, // checked below: corrupt or wrong passphrase
		{"first chunk flipped", flip(hlen + 40), RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
		{"middle flipped", flip(len(file) / 2), RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
		{"last byte flipped", flip(len(file) - 1), RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
		{"truncated at a chunk boundary", file[:hlen+4+backupChunk+16], RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
		{"truncated by one byte", file[:len(file)-1], RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
		{"truncated after the header", file[:hlen], RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
		{"extra bytes", append(bytes.Clone(file), 0), RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
		{"chunks swapped", swapChunks(t, file, hlen), RestoreOptions{Passphrase: pass}, ErrBackupCorrupt},
	} {
		dir := t.TempDir()
		_, err := RestoreBackup(ctx, bytes.NewReader(c.data), filepath.Join(dir, "keyholder.db"), c.opts)
		want := c.want
		if want == nil {
			if !errors.Is(err, ErrBackupCorrupt) && !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("%s: err = %v, want a refusal", c.name, err)
			}
		} else if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: the refused restore left %d files behind", c.name, len(ents))
		}
	}

	// A backup of another console never replaces this console's database.
	// (A console on PostgreSQL refuses any restore into its database.)
	path := s.DB().Location()
	wantOther, wantExists := ErrOtherConsole, ErrDatabaseExists
	if s.DB().Dialect() == store.Postgres {
		wantOther, wantExists = ErrRestorePostgres, ErrRestorePostgres
	}
	before := snapshot(t, s)
	_, err := RestoreBackup(ctx, bytes.NewReader(otherFile), path, RestoreOptions{Passphrase: pass, Replace: true})
	if !errors.Is(err, wantOther) {
		t.Fatalf("another console's backup: err = %v, want ErrOtherConsole", err)
	}
	_, err = RestoreBackup(ctx, bytes.NewReader(file), path, RestoreOptions{Passphrase: pass})
	if !errors.Is(err, wantExists) {
		t.Fatalf("restore over a database without Replace: err = %v, want ErrDatabaseExists", err)
	}
	if after := snapshot(t, s); after != before {
		t.Fatal("a refused restore changed the database")
	}
	if ents, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keyholder-restore-*")); len(ents) != 0 {
		t.Fatalf("refused restores left temp files: %v", ents)
	}
	_ = store.ErrNotFound
}

// swapChunks exchanges the first two chunks (both full-size).
func swapChunks(t *testing.T, file []byte, hlen int) []byte {
	t.Helper()
	n := 4 + backupChunk + 16
	if len(file) < hlen+2*n+4 {
		t.Fatal("backup too small to swap chunks")
	}
	b := bytes.Clone(file)
	copy(b[hlen:], file[hlen+n:hlen+2*n])
	copy(b[hlen+n:], file[hlen:hlen+n])
	return b
}

func TestRecoverWithConsistentlyAlteredShare(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	texts, err := s.SplitRecovery(ctx, "alice", 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	// A share whose value was changed and whose checksum was recomputed
	// passes Parse; the key check value catches it.
	sh, err := shamir.Parse(texts[1])
	if err != nil {
		t.Fatal(err)
	}
	sh.Value[0] ^= 1
	before := snapshot(t, s)
	s.Lock()
	if _, err := s.Recover(ctx, []string{texts[0], sh.String()}, "alice", []byte("another passphrase")); !errors.Is(err, ErrWrongShares) {
		t.Fatalf("altered share: err = %v, want ErrWrongShares", err)
	}
	if s.Unlocked() || snapshot(t, s) != before {
		t.Fatal("a refused recovery unlocked the service or changed the officers")
	}
}

// TestBackupVector restores a backup file written by format v1 (officer
// alice, passphrase "correct horse battery", test Argon2id parameters), so
// a change to the format or the envelopes that breaks old backups fails here.
func TestBackupVector(t *testing.T) {
	ctx := context.Background()
	f, err := os.Open(filepath.Join("testdata", "backup-v1.khbackup"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	if _, err := RestoreBackup(ctx, f, filepath.Join(dir, "keyholder.db"), RestoreOptions{Officer: "alice", Passphrase: []byte("correct horse battery")}); err != nil {
		t.Fatal(err)
	}
	s := New(openRestored(t, dir), Options{KDF: testKDF})
	if _, err := s.Unlock(ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	sec, err := s.ReleaseSecret(ctx, "vol_cffa43f55ea47591642b", 1)
	if err != nil || hex.EncodeToString(sec) != "6950e3ec15bc74bbd8481e852adfcd8fafa8d8f647636d27ff720238cdbd63d5" {
		t.Fatalf("vector secret: %x, %v", sec, err)
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBackupCarriesDataDirFiles(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	src := s.DB().DataDir()
	key := []byte("-----BEGIN PRIVATE KEY-----\nlistener key\n-----END PRIVATE KEY-----\n")
	os.WriteFile(filepath.Join(src, "release-tls.key"), key, 0o600)
	os.WriteFile(filepath.Join(src, "release-tls.crt"), []byte("certificate"), 0o600)
	var buf bytes.Buffer
	info, err := s.WriteBackup(ctx, "officer:alice", &buf, "release-tls.crt", "release-tls.key", "absent.file")
	if err != nil || len(info.Files) != 2 {
		t.Fatalf("WriteBackup = %+v, %v", info, err)
	}
	if bytes.Contains(buf.Bytes(), []byte("listener key")) {
		t.Fatal("a carried file is in the backup in plaintext")
	}
	for _, bad := range []string{"../etc/passwd", "keyholder.db", ".hidden", "a/b"} {
		if _, err := s.WriteBackup(ctx, "officer:alice", io.Discard, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("file %q: err = %v, want ErrInvalid", bad, err)
		}
	}
	dst := t.TempDir()
	rinfo, err := RestoreBackup(ctx, bytes.NewReader(buf.Bytes()), filepath.Join(dst, "keyholder.db"), RestoreOptions{Passphrase: []byte("correct horse battery")})
	if err != nil || len(rinfo.Files) != 2 || rinfo.Bytes != info.Bytes {
		t.Fatalf("restore = %+v, %v (written %+v)", rinfo, err, info)
	}
	got, err := os.ReadFile(filepath.Join(dst, "release-tls.key"))
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("restored key file: %q, %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "release-tls.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored key file mode %v", fi.Mode())
	}
	r := New(openRestored(t, dst), Options{KDF: testKDF})
	if _, err := r.Unlock(ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
}

// openRestored opens the SQLite file a backup was restored into (a backup
// is one SQLite file whatever the source console's database).
func openRestored(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(dir, "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestBackupKeepsOthersInProgress: a backup removes what a killed backup
// left behind (older than staleBackupAge) but not the temporary folder of
// a backup running now, another officer's or another replica's.
func TestBackupKeepsOthersInProgress(t *testing.T) {
	ctx := context.Background()
	// On PostgreSQL the snapshot goes to the temporary folder: this test's
	// own, not the one other tests share.
	t.Setenv("TMPDIR", t.TempDir())
	s, _ := newTestService(t)
	dir := filepath.Dir(s.DB().Path())
	if s.DB().Dialect() == store.Postgres {
		dir = os.TempDir()
	}
	running, err := os.MkdirTemp(dir, ".keyholder-backup-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(running)
	os.WriteFile(filepath.Join(running, "snapshot.db"), []byte("in progress"), 0o600)
	killed, err := os.MkdirTemp(dir, ".keyholder-backup-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(killed)
	old := time.Now().Add(-2 * staleBackupAge)
	os.Chtimes(killed, old, old)
	if _, err := s.WriteBackup(ctx, "officer:alice", io.Discard); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(running, "snapshot.db")); err != nil || string(b) != "in progress" {
		t.Fatalf("a backup in progress lost its snapshot: %q, %v", b, err)
	}
	if _, err := os.Stat(killed); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a killed backup's folder is still there: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".keyholder-backup-*"))
	for _, f := range left {
		if f != running {
			t.Errorf("the backup left %s behind", f)
		}
	}
}
