package custody

import (
	"bufio"
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

// Backup file format (v1). All integers are big-endian.
//
//	magic        "KEYHOLDER-BACKUP-1\n" (19 bytes)
//	header_len   uint32, at most 1 MiB
//	header       JSON backupHeader: console ID, time, schema version, the
//	             master key check value, a random 32-byte file salt, the chunk
//	             size, and every officer's envelope (already Argon2id-wrapped)
//	chunks       repeated: uint32 length || AES-256-GCM ciphertext
//
// The header may list files (name and size) kept beside the database in the
// data directory, such as the release listener's TLS identity, whose pin the
// image manifests carry. The plaintext stream is then those files' bytes in
// the listed order, followed by the database; without files it is the
// database alone.
//
// The stream key is HKDF-SHA256(master key, salt = file salt,
// info = "keyholder-backup-stream-v1" || console ID). Chunk i (from 0) is
// the i-th chunk_size bytes of a consistent SQLite snapshot of the whole
// console (VACUUM INTO), sealed with nonce = uint64(i) || 0 0 0 || final,
// where final is 1 on the last chunk only, and with associated data
// SHA-256(magic || header_len || header). So the header cannot be changed,
// chunks cannot be reordered, dropped or repeated, the file cannot be cut
// short (no final chunk) or extended (bytes after it), and a file of one
// console never opens as another's. Restoring needs an officer passphrase
// that was valid when the backup was made.

const (
	backupMagic     = "KEYHOLDER-BACKUP-1\n"
	maxBackupHeader = 1 << 20
	backupChunk     = 64 << 10
)

// Errors of RestoreBackup that callers branch on.
var (
	ErrBackupCorrupt  = errors.New("backup file is damaged, truncated or tampered with")
	ErrNotBackup      = errors.New("not a Keyholder backup file")
	ErrOtherConsole   = errors.New("the backup belongs to another console")
	ErrDatabaseExists = errors.New("a console database exists already")
	// ErrRestorePostgres means a restore was aimed at a PostgreSQL
	// database: a backup restores into a data directory (SQLite).
	ErrRestorePostgres = errors.New("a backup restores into a data directory (the embedded SQLite database), not into PostgreSQL")
)

type backupOfficer struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	KDF     KDFParams `json:"kdf"`
	Salt    []byte    `json:"salt"`
	Wrapped []byte    `json:"wrapped"`
}

type backupHeader struct {
	ConsoleID     string          `json:"console_id"`
	CreatedAt     time.Time       `json:"created_at"`
	SchemaVersion int             `json:"schema_version"`
	KeyCheck      []byte          `json:"key_check"`
	FileSalt      []byte          `json:"file_salt"`
	ChunkSize     int             `json:"chunk_size"`
	Officers      []backupOfficer `json:"officers"`
	Files         []backupFile    `json:"files,omitempty"`
}

// backupFile is a file of the data directory carried in a backup.
type backupFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

const (
	maxBackupFiles    = 16
	maxBackupFileSize = 16 << 20
)

// validFileName accepts plain names of the data directory that are not the
// database itself.
func validFileName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' || strings.HasPrefix(name, "keyholder.db") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// BackupInfo describes a backup file.
type BackupInfo struct {
	ConsoleID     string    `json:"console_id"`
	CreatedAt     time.Time `json:"created_at"`
	SchemaVersion int       `json:"schema_version"`
	Officers      []string  `json:"officers"`
	Bytes         int64     `json:"bytes"` // size of the database inside
	Files         []string  `json:"files"` // further data-directory files inside
}

func streamKey(master, salt []byte, cid string) []byte {
	k, err := hkdf.Key(sha256.New, master, salt, infoBackup+cid, keySize)
	if err != nil {
		panic(err)
	}
	return k
}

func chunkNonce(i uint64, final bool) []byte {
	n := make([]byte, nonceSize)
	binary.BigEndian.PutUint64(n, i)
	if final {
		n[nonceSize-1] = 1
	}
	return n
}

// staleBackupAge is how old a backup's temporary folder must be before a
// later backup takes it for one a killed process left behind.
const staleBackupAge = time.Hour

// WriteBackup writes an encrypted, integrity-protected export of the whole
// console state to w. The service must be unlocked (the stream key derives
// from the master key). actor is recorded in the audit log; the audit entry
// is written before the snapshot, so the backup contains it. files names
// further files of the data directory (the database's directory) to carry,
// e.g. the release listener's TLS certificate and key; missing ones are
// left out. RestoreBackup puts them back beside the database.
func (s *Service) WriteBackup(ctx context.Context, actor string, w io.Writer, files ...string) (BackupInfo, error) {
	if !s.Unlocked() {
		return BackupInfo{}, ErrLocked
	}
	if len(files) > maxBackupFiles {
		return BackupInfo{}, fmt.Errorf("%w: at most %d files", ErrInvalid, maxBackupFiles)
	}
	var extra [][]byte
	defer func() {
		for _, b := range extra {
			clear(b)
		}
	}()
	var listed []backupFile
	for _, name := range files {
		if !validFileName(name) {
			return BackupInfo{}, fmt.Errorf("%w: backup file name %q", ErrInvalid, name)
		}
		if s.db.DataDir() == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.db.DataDir(), name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return BackupInfo{}, fmt.Errorf("read %s for the backup: %w", name, err)
		}
		if len(b) > maxBackupFileSize {
			clear(b)
			return BackupInfo{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, name, maxBackupFileSize)
		}
		extra = append(extra, b)
		listed = append(listed, backupFile{Name: name, Size: int64(len(b))})
	}
	if _, err := s.log.AppendDB(ctx, audit.Entry{At: s.now(), Actor: actor, Action: "console.backup", Decision: "ok", Reason: "encrypted backup written"}); err != nil {
		return BackupInfo{}, err
	}
	if err := s.CheckpointNow(ctx); err != nil {
		return BackupInfo{}, err
	}
	dir := filepath.Dir(s.db.Path())
	if s.db.Dialect() == store.Postgres {
		dir = os.TempDir() // the snapshot is a SQLite file (store.Snapshot)
	}
	// What a killed backup left behind goes; a backup running now (another
	// officer's, another console's in a shared temporary folder) keeps its
	// own private folder.
	stale, _ := filepath.Glob(filepath.Join(dir, ".keyholder-backup-*"))
	for _, f := range stale {
		if fi, err := os.Lstat(f); err == nil && time.Since(fi.ModTime()) > staleBackupAge {
			os.RemoveAll(f)
		}
	}
	priv, err := os.MkdirTemp(dir, ".keyholder-backup-*")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup snapshot: %w", err)
	}
	defer os.RemoveAll(priv)
	snap := filepath.Join(priv, "snapshot.db")
	if err := s.db.Snapshot(ctx, snap); err != nil {
		return BackupInfo{}, fmt.Errorf("backup snapshot: %w", err)
	}
	hdr, err := s.backupHeader(ctx, snap)
	if err != nil {
		return BackupInfo{}, err
	}
	hdr.Files = listed
	snapFile, err := os.Open(snap)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup snapshot: %w", err)
	}
	defer snapFile.Close()
	parts := make([]io.Reader, 0, len(extra)+1)
	for _, b := range extra {
		parts = append(parts, bytes.NewReader(b))
	}
	in := io.MultiReader(append(parts, snapFile)...)
	var info BackupInfo
	err = s.withMaster(func(master []byte, cid string) error {
		if cid != hdr.ConsoleID {
			return errors.New("backup snapshot belongs to another console")
		}
		key := streamKey(master, hdr.FileSalt, cid)
		defer clear(key)
		n, err := writeBackupStream(w, hdr, key, in)
		info = BackupInfo{ConsoleID: cid, CreatedAt: hdr.CreatedAt, SchemaVersion: hdr.SchemaVersion, Bytes: n}
		return err
	})
	for _, f := range listed {
		info.Files = append(info.Files, f.Name)
		info.Bytes -= f.Size
	}
	for _, o := range hdr.Officers {
		info.Officers = append(info.Officers, o.Name)
	}
	return info, err
}

// backupHeader reads the envelopes from the snapshot itself, so header and
// content agree.
func (s *Service) backupHeader(ctx context.Context, snap string) (backupHeader, error) {
	sdb, err := sql.Open("sqlite", "file:"+(&url.URL{Path: snap}).EscapedPath()+"?mode=ro")
	if err != nil {
		return backupHeader{}, fmt.Errorf("read backup snapshot: %w", err)
	}
	defer sdb.Close()
	h := backupHeader{CreatedAt: s.now().UTC(), ChunkSize: backupChunk, FileSalt: make([]byte, 32)}
	rand.Read(h.FileSalt)
	if err := sdb.QueryRowContext(ctx, `SELECT console_id, key_check FROM console_identity WHERE id = 1`).Scan(&h.ConsoleID, &h.KeyCheck); err != nil {
		return h, fmt.Errorf("read backup snapshot: %w", err)
	}
	if err := sdb.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&h.SchemaVersion); err != nil {
		return h, fmt.Errorf("read backup snapshot: %w", err)
	}
	rows, err := sdb.QueryContext(ctx, `SELECT id, name, role, kdf_time, kdf_memory_kib, kdf_threads, salt, wrapped_master FROM officers ORDER BY name`)
	if err != nil {
		return h, fmt.Errorf("read backup snapshot: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o backupOfficer
		if err := rows.Scan(&o.ID, &o.Name, &o.Role, &o.KDF.Time, &o.KDF.MemoryKiB, &o.KDF.Threads, &o.Salt, &o.Wrapped); err != nil {
			return h, err
		}
		h.Officers = append(h.Officers, o)
	}
	return h, rows.Err()
}

func writeBackupStream(w io.Writer, hdr backupHeader, key []byte, in io.Reader) (int64, error) {
	hj, err := json.Marshal(hdr)
	if err != nil {
		return 0, err
	}
	var pre bytes.Buffer
	pre.WriteString(backupMagic)
	binary.Write(&pre, binary.BigEndian, uint32(len(hj)))
	pre.Write(hj)
	hh := sha256.Sum256(pre.Bytes())
	bw := bufio.NewWriter(w)
	if _, err := bw.Write(pre.Bytes()); err != nil {
		return 0, fmt.Errorf("write backup: %w", err)
	}
	aead := newGCM(key)
	buf := make([]byte, hdr.ChunkSize)
	next := make([]byte, hdr.ChunkSize)
	n, err := io.ReadFull(in, buf)
	var total int64
	for i := uint64(0); ; i++ {
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return total, fmt.Errorf("read backup snapshot: %w", err)
		}
		final := err != nil
		var m int
		var nerr error
		if !final {
			// Look ahead so the last full chunk is marked final too.
			m, nerr = io.ReadFull(in, next)
			if nerr == io.EOF {
				final = true
			}
		}
		ct := aead.Seal(nil, chunkNonce(i, final), buf[:n], hh[:])
		if err := binary.Write(bw, binary.BigEndian, uint32(len(ct))); err != nil {
			return total, fmt.Errorf("write backup: %w", err)
		}
		if _, err := bw.Write(ct); err != nil {
			return total, fmt.Errorf("write backup: %w", err)
		}
		total += int64(n)
		if final {
			break
		}
		buf, next = next, buf
		n, err = m, nerr
	}
	return total, bw.Flush()
}

// backupReader decrypts a backup stream after its header was read.
type backupReader struct {
	r    *bufio.Reader
	hdr  backupHeader
	hh   [32]byte
	aead cipher.AEAD
}

// readBackupHeader reads and checks the magic and the header.
func readBackupHeader(r *bufio.Reader) (backupHeader, [32]byte, error) {
	var hdr backupHeader
	var hh [32]byte
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != backupMagic {
		return hdr, hh, ErrNotBackup
	}
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return hdr, hh, fmt.Errorf("%w: header cut short", ErrBackupCorrupt)
	}
	if n == 0 || n > maxBackupHeader {
		return hdr, hh, fmt.Errorf("%w: header length %d", ErrBackupCorrupt, n)
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(r, hj); err != nil {
		return hdr, hh, fmt.Errorf("%w: header cut short", ErrBackupCorrupt)
	}
	dec := json.NewDecoder(bytes.NewReader(hj))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil {
		return hdr, hh, fmt.Errorf("%w: header: %v", ErrBackupCorrupt, err)
	}
	if hdr.ChunkSize < 1 || hdr.ChunkSize > 1<<20 || len(hdr.FileSalt) != 32 || len(hdr.KeyCheck) != 32 || hdr.ConsoleID == "" || len(hdr.Officers) == 0 {
		return hdr, hh, fmt.Errorf("%w: header fields out of range", ErrBackupCorrupt)
	}
	if len(hdr.Files) > maxBackupFiles {
		return hdr, hh, fmt.Errorf("%w: too many files", ErrBackupCorrupt)
	}
	seen := map[string]bool{}
	for _, f := range hdr.Files {
		if !validFileName(f.Name) || f.Size < 0 || f.Size > maxBackupFileSize || seen[f.Name] {
			return hdr, hh, fmt.Errorf("%w: bad file entry in the header", ErrBackupCorrupt)
		}
		seen[f.Name] = true
	}
	h := sha256.New()
	h.Write(magic)
	binary.Write(h, binary.BigEndian, n)
	h.Write(hj)
	copy(hh[:], h.Sum(nil))
	return hdr, hh, nil
}

// decryptTo writes the plaintext database to w, failing on any damage.
func (br *backupReader) decryptTo(w io.Writer) (int64, error) {
	var total int64
	maxCT := uint32(br.hdr.ChunkSize + br.aead.Overhead())
	buf := make([]byte, maxCT)
	out := make([]byte, 0, maxCT) // not in place: a failed Open clears its output
	for i := uint64(0); ; i++ {
		var n uint32
		if err := binary.Read(br.r, binary.BigEndian, &n); err != nil {
			return total, fmt.Errorf("%w: the file ends before its last chunk (truncated)", ErrBackupCorrupt)
		}
		if n < uint32(br.aead.Overhead()) || n > maxCT {
			return total, fmt.Errorf("%w: chunk %d has length %d", ErrBackupCorrupt, i, n)
		}
		ct := buf[:n]
		if _, err := io.ReadFull(br.r, ct); err != nil {
			return total, fmt.Errorf("%w: chunk %d cut short (truncated)", ErrBackupCorrupt, i)
		}
		final := false
		pt, err := br.aead.Open(out[:0], chunkNonce(i, false), ct, br.hh[:])
		if err != nil {
			pt, err = br.aead.Open(out[:0], chunkNonce(i, true), ct, br.hh[:])
			final = true
		}
		if err != nil {
			return total, fmt.Errorf("%w: chunk %d does not authenticate", ErrBackupCorrupt, i)
		}
		if !final && len(pt) != br.hdr.ChunkSize {
			return total, fmt.Errorf("%w: chunk %d is short", ErrBackupCorrupt, i)
		}
		if _, err := w.Write(pt); err != nil {
			return total, fmt.Errorf("write restored database: %w", err)
		}
		total += int64(len(pt))
		if final {
			if _, err := br.r.ReadByte(); err != io.EOF {
				return total, fmt.Errorf("%w: data after the last chunk", ErrBackupCorrupt)
			}
			return total, nil
		}
	}
}

// RestoreOptions says who restores a backup and where.
type RestoreOptions struct {
	// Officer and Passphrase open one of the envelopes in the backup ("" is
	// the only officer).
	Officer    string
	Passphrase []byte
	// Replace allows replacing an existing database of the same console.
	// A database of another console is never replaced.
	Replace bool
}

// RestoreBackup reads a backup from r and installs it as the database at
// dbPath. It checks everything before it touches dbPath: the passphrase, the
// integrity of every chunk, the end of the file, and the restored
// database's own integrity and identity. No console may be running on
// dbPath.
func RestoreBackup(ctx context.Context, r io.Reader, dbPath string, opts RestoreOptions) (BackupInfo, error) {
	if store.IsPostgresURL(dbPath) {
		return BackupInfo{}, ErrRestorePostgres
	}
	br := &backupReader{r: bufio.NewReaderSize(r, 1<<16)}
	hdr, hh, err := readBackupHeader(br.r)
	if err != nil {
		return BackupInfo{}, err
	}
	br.hdr, br.hh = hdr, hh
	if hdr.SchemaVersion > store.LatestVersion() {
		return BackupInfo{}, fmt.Errorf("%w: the backup has schema version %d, this binary knows up to %d; use a newer Keyholder", store.ErrTooNew, hdr.SchemaVersion, store.LatestVersion())
	}
	info := BackupInfo{ConsoleID: hdr.ConsoleID, CreatedAt: hdr.CreatedAt, SchemaVersion: hdr.SchemaVersion}
	var env *backupOfficer
	for i := range hdr.Officers {
		info.Officers = append(info.Officers, hdr.Officers[i].Name)
		if hdr.Officers[i].Name == opts.Officer || (opts.Officer == "" && len(hdr.Officers) == 1) {
			env = &hdr.Officers[i]
		}
	}
	if env == nil {
		if opts.Officer == "" {
			return info, fmt.Errorf("%w: the backup has %d officers; name one", ErrInvalid, len(hdr.Officers))
		}
		return info, ErrWrongPassphrase
	}
	master, err := unwrapMaster(opts.Passphrase, env.Salt, env.Wrapped, env.KDF, hdr.ConsoleID, env.ID)
	if err != nil {
		return info, ErrWrongPassphrase
	}
	defer clear(master)
	if subtle.ConstantTimeCompare(keyCheck(master, hdr.ConsoleID), hdr.KeyCheck) != 1 {
		return info, ErrWrongPassphrase
	}
	key := streamKey(master, hdr.FileSalt, hdr.ConsoleID)
	br.aead = newGCM(key)
	clear(key)

	dir := filepath.Dir(dbPath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, fmt.Errorf("create data directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".keyholder-restore-*.tmp")
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	tmpPath := tmp.Name()
	cleanup := func() {
		for _, p := range []string{tmpPath, tmpPath + "-wal", tmpPath + "-shm", tmpPath + ".lock"} {
			os.Remove(p)
		}
	}
	var filesLen int64
	for _, f := range hdr.Files {
		filesLen += f.Size
	}
	split := &splitWriter{head: make([]byte, 0, filesLen), headLen: filesLen, rest: tmp}
	defer clear(split.head)
	n, err := br.decryptTo(split)
	if err == nil && int64(len(split.head)) < filesLen {
		err = fmt.Errorf("%w: the files listed in the header are cut short", ErrBackupCorrupt)
	}
	n -= filesLen
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return info, err
	}
	info.Bytes = n
	if err := checkRestored(ctx, tmpPath, hdr, master, env.Name); err != nil {
		cleanup()
		return info, err
	}
	if _, err := os.Stat(dbPath); err == nil {
		if !opts.Replace {
			cleanup()
			return info, fmt.Errorf("%w at %s; restore into an empty data directory or pass --replace", ErrDatabaseExists, dbPath)
		}
		if err := checkReplaceable(ctx, dbPath, hdr.ConsoleID); err != nil {
			cleanup()
			return info, err
		}
		os.Remove(dbPath + "-wal")
		os.Remove(dbPath + "-shm")
	}
	// The files first, the database last: the database is the commit point.
	off := int64(0)
	for _, f := range hdr.Files {
		if err := installFile(filepath.Join(dir, f.Name), split.head[off:off+f.Size]); err != nil {
			cleanup()
			return info, err
		}
		off += f.Size
		info.Files = append(info.Files, f.Name)
	}
	if err := os.Rename(tmpPath, dbPath); err != nil {
		cleanup()
		return info, fmt.Errorf("install restored database: %w", err)
	}
	cleanup()
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return info, nil
}

// checkRestored opens the decrypted database, migrates it to this binary's
// schema, and checks its integrity and that it is the console the header
// names.
func checkRestored(ctx context.Context, path string, hdr backupHeader, master []byte, officer string) error {
	db, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		return fmt.Errorf("%w: restored database: %v", ErrBackupCorrupt, err)
	}
	defer db.Close()
	if err := db.IntegrityCheck(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrBackupCorrupt, err)
	}
	cid, ok, err := verifyMaster(ctx, db, master)
	if err != nil || !ok || cid != hdr.ConsoleID {
		return fmt.Errorf("%w: the database inside does not match its header", ErrBackupCorrupt)
	}
	if _, err := audit.NewLog(db).AppendDB(ctx, audit.Entry{Actor: officerActor(officer), Action: "console.restore", Subject: cid, Decision: "ok",
		Reason: "restored from the backup of " + store.Time(hdr.CreatedAt)}); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("restore: %w", store.Classify(err))
	}
	return nil
}

// checkReplaceable refuses to replace a running console's database or one
// that belongs to another console.
func checkReplaceable(ctx context.Context, dbPath, want string) error {
	db, err := store.Open(ctx, dbPath, store.Options{Exclusive: true})
	if err != nil {
		return err
	}
	defer db.Close()
	cid, err := consoleID(ctx, db)
	if err != nil && !errors.Is(err, ErrNotInitialized) {
		return err
	}
	if err == nil && cid != want {
		return fmt.Errorf("%w (%s, not %s); restore it into an empty data directory", ErrOtherConsole, want, cid)
	}
	_, err = db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// splitWriter sends the first headLen bytes to head and the rest to rest.
type splitWriter struct {
	head    []byte
	headLen int64
	rest    io.Writer
}

func (w *splitWriter) Write(p []byte) (int, error) {
	n := len(p)
	if room := w.headLen - int64(len(w.head)); room > 0 {
		k := min(int64(len(p)), room)
		w.head = append(w.head, p[:k]...)
		p = p[k:]
	}
	if len(p) > 0 {
		if _, err := w.rest.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// installFile writes b to path (mode 0600) through a synced temp file.
func installFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".keyholder-restore-*.tmp")
	if err != nil {
		return fmt.Errorf("restore %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", filepath.Base(path), err)
	}
	return nil
}
