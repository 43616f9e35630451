// Package custody keeps the console's keys: the master key (only ever stored
// wrapped), the officers who can unlock it, and the per-volume release
// secrets with their generations.
//
// What to use:
//   - New makes a Service over the store. Init creates a console (first
//     officer, master key, audit signing key); Unlock opens the key service
//     once per process with an officer's passphrase; Authenticate checks an
//     officer (for UI logins and approvals) and slows down repeated failures.
//   - CreateVolume (or CreateVolumeTx inside a caller's transaction) makes a
//     volume and its generation-1 release secret; ReleaseSecret unwraps one;
//     Rotate, ConfirmRotation, Revoke and Destroy manage the life cycle.
//   - SplitRecovery and Recover handle Shamir recovery shares (see
//     backend/shamir); WriteBackup and RestoreBackup the encrypted export.
//
// Every change is audited in the same transaction (backend/audit), through
// the console's audit log, which the service makes and hands out with
// AuditLog to every other package that appends (release, quorum, images,
// fleet). While unlocked, the service puts the unwrapped audit signing key
// in that log's signer slot, so that any append through it (custody's, the
// release engine's) that makes CheckpointEvery entries follow the newest
// checkpoint signs one in its own transaction; Lock empties the slot and
// wipes the key, Close first signs the tail. The master key exists in plaintext only in
// this process's memory while the service is unlocked; release secrets are
// unwrapped on demand and the caller wipes the returned slice. Nothing this
// package returns in an error contains key material.
//
// Formats: the envelopes and their associated data are specified in
// envelope.go, the backup file in backup.go (testdata/backup-v1.khbackup is
// a vector that must keep restoring), the recovery shares in backend/shamir.
//
// Security assumptions and limits, in plain words:
//   - An officer's passphrase is as strong as its Argon2id cost (DefaultKDF,
//     about one second and 256 MiB per guess); repeated wrong guesses through
//     the console wait (persisted per officer), but a stolen database file
//     can be attacked offline at that cost per guess.
//   - Wrapped values are bound to their row: a secret copied to another
//     volume, generation, officer or console does not open. Someone who can
//     write the database can still delete rows (destroying access, which
//     backups and the audit log reveal) but cannot read or forge keys.
//   - While unlocked, the master key and the audit signing key live in this
//     process's memory; Go may keep copies the package cannot wipe (a
//     growing stack is copied; passphrases that arrive from the UI as
//     strings are immutable). Protection against memory readers is out of
//     scope.
//   - Recovery shares are not verifiable: a wrong share is caught only after
//     combining, by the key check value (ErrWrongShares), not attributed.
//   - Auto-unseal (autounseal.go) stores one more copy of the master key,
//     wrapped by an AES key inside a PKCS#11 token: whoever can use that
//     token (holds its PIN and reaches it) can unlock the console without
//     an officer. The PIN is never stored in the database.
package custody

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

// Errors that callers branch on.
var (
	ErrNotInitialized  = errors.New("the console is not initialised; run keyholder init")
	ErrInitialized     = errors.New("the console is already initialised")
	ErrLocked          = errors.New("the key service is locked; unlock it with an officer passphrase")
	ErrWrongPassphrase = errors.New("wrong officer name or passphrase")
	ErrWeakPassphrase  = errors.New("passphrase too short (at least 10 characters)")
	ErrForbidden       = errors.New("the officer's role does not allow this")
	ErrRevoked         = errors.New("the volume is revoked")
	ErrDestroyed       = errors.New("the volume's secrets are destroyed")
	ErrNoGeneration    = errors.New("no such generation for this volume")
	ErrRotationPending = errors.New("a rotation is already waiting for the agent's confirmation")
	ErrNotPending      = errors.New("that generation is not a pending rotation")
	ErrNotRevoked      = errors.New("only a revoked volume can be destroyed")
	ErrConfirmation    = errors.New("confirmation does not match the volume ID")
	ErrLastAdmin       = errors.New("the last admin cannot be removed or demoted")
	ErrOfficerExists   = errors.New("an officer with that name exists already")
	ErrInvalid         = errors.New("invalid argument")
)

// ThrottledError is returned while an officer must wait after repeated
// wrong passphrases; errors.Is(err, ErrThrottled) is true for it. No
// passphrase is checked (and no failure counted) while it applies.
type ThrottledError struct {
	Officer    string
	RetryAfter time.Duration
}

// ErrThrottled is wrapped by *ThrottledError.
var ErrThrottled = errors.New("too many wrong passphrases")

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many wrong passphrases for %s; try again in %s", e.Officer, e.RetryAfter.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// Options configures a Service.
type Options struct {
	// KDF is used for new officer envelopes; zero means DefaultKDF. Tests pass
	// small parameters (they are stored with each envelope).
	KDF KDFParams
	// Now is the clock (backoff, audit times); nil means time.Now.
	Now func() time.Time
	// CheckpointEvery is N: while the service is unlocked, every audit
	// append through its AuditLog (custody's, the release engine's, ...)
	// that makes N entries follow the newest checkpoint writes a signed
	// checkpoint over itself in its own transaction; Close signs the tail.
	// Zero means 64.
	CheckpointEvery int64
	// KDFStarted, if set, is called as each passphrase check's Argon2id
	// starts (tests count the checks that actually ran).
	KDFStarted func()
}

// Service is the key service. It is safe for concurrent use.
type Service struct {
	db   *store.DB
	log  *audit.Log // the console's audit log; its signer is set while unlocked
	opts Options

	// kdf bounds concurrent passphrase checks: each takes the envelope's
	// Argon2id memory (256 MiB by default), so a burst of logins must not
	// exhaust the machine.
	kdf chan struct{}

	mu     sync.RWMutex
	master []byte // nil while locked
	// challengeKey is derived from master at unlock (challenge.go) and
	// wiped with it.
	challengeKey []byte
	signer       *auditKey // audit signing key, nil while locked
	consoleID    string
	// lockedReason says why an unlock without an officer (auto-unseal)
	// did not happen; shown by State while locked.
	lockedReason string
}

// New returns a locked key service over db.
func New(db *store.DB, opts Options) *Service {
	if opts.KDF == (KDFParams{}) {
		opts.KDF = DefaultKDF
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 64
	}
	return &Service{db: db, log: audit.NewLog(db), opts: opts, kdf: make(chan struct{}, 2)}
}

// withKDFSlot runs fn when one of the passphrase-check slots is free.
func (s *Service) withKDFSlot(ctx context.Context, fn func()) error {
	select {
	case s.kdf <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.kdf }()
	if err := ctx.Err(); err != nil {
		return err // abandoned while waiting for the slot
	}
	if s.opts.KDFStarted != nil {
		s.opts.KDFStarted()
	}
	fn()
	return nil
}

// DB is the store the service works on.
func (s *Service) DB() *store.DB { return s.db }

// AuditLog is the console's audit log over DB. Every package that appends
// to it in this process uses this one, so that its entries are signed with
// the key the service holds while unlocked (and appended unsigned while
// locked).
func (s *Service) AuditLog() *audit.Log { return s.log }

func (s *Service) now() time.Time { return s.opts.Now() }

// State is the key service's state as the UI shows it.
type State struct {
	Initialized bool   `json:"initialized"`
	Unlocked    bool   `json:"unlocked"`
	ConsoleID   string `json:"console_id"`
	Officers    int    `json:"officers"`
	// AutoUnseal is true when a token-wrapped master key is set up.
	AutoUnseal bool `json:"auto_unseal"`
	// LockedReason says why the service is still locked although it tried
	// to unseal itself (auto-unseal), e.g. a missing token or wrong PIN.
	LockedReason string `json:"locked_reason,omitempty"`
}

// State reports whether the console is initialised and the service unlocked.
func (s *Service) State(ctx context.Context) (State, error) {
	var st State
	id, err := consoleID(ctx, s.db)
	if errors.Is(err, ErrNotInitialized) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.Initialized, st.ConsoleID = true, id
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM officers`).Scan(&st.Officers); err != nil {
		return st, fmt.Errorf("count officers: %w", store.Classify(err))
	}
	st.Unlocked = s.Unlocked()
	st.LockedReason = s.LockedReason()
	if _, err := s.AutoUnsealInfo(ctx); err == nil {
		st.AutoUnseal = true
	} else if !errors.Is(err, ErrNoAutoUnseal) {
		return st, err
	}
	return st, nil
}

// Initialized reports whether the console has a master key and officers.
func Initialized(ctx context.Context, db *store.DB) (bool, error) {
	_, err := consoleID(ctx, db)
	if errors.Is(err, ErrNotInitialized) {
		return false, nil
	}
	return err == nil, err
}

type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func consoleID(ctx context.Context, q rowQueryer) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT console_id FROM console_identity WHERE id = 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotInitialized
	}
	if err != nil {
		return "", fmt.Errorf("read console identity: %w", store.Classify(err))
	}
	return id, nil
}

// Unlocked reports whether the key service holds the master key.
func (s *Service) Unlocked() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.master != nil
}

// Lock wipes the master key and the audit signing key from memory.
func (s *Service) Lock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockLocked()
}

func (s *Service) lockLocked() {
	clear(s.master)
	clear(s.challengeKey)
	s.challengeKey = nil
	s.signer.wipe()
	s.master, s.signer = nil, nil
}

// setSignerLocked takes the unwrapped audit key seed (copying it) and puts
// it in the audit log's signer slot, so that appends through AuditLog sign
// their checkpoints in their own transaction. s.mu is held.
func (s *Service) setSignerLocked(seed []byte) error {
	k := &auditKey{priv: ed25519.NewKeyFromSeed(seed)}
	k.pub = k.priv.Public().(ed25519.PublicKey)
	remove, err := s.log.SetSigner(k, s.opts.CheckpointEvery)
	if err != nil {
		k.wipe()
		return err
	}
	k.remove = remove
	s.signer = k
	return nil
}

// auditKey is the unwrapped audit signing key. It has its own lock, not
// s.mu: audit.Log.Append calls Sign from transactions that custody runs while
// holding s.mu for reading, and a nested read lock could deadlock against a
// waiting Lock.
type auditKey struct {
	mu     sync.RWMutex
	priv   ed25519.PrivateKey // nil once wiped
	pub    ed25519.PublicKey
	remove func() // empties the audit log's signer slot (audit.Log.SetSigner)
}

var errKeyWiped = errors.New("the audit signing key is wiped (the key service locked)")

// PublicKey implements audit.Signer.
func (k *auditKey) PublicKey() ed25519.PublicKey { return k.pub }

// Sign implements audit.Signer.
func (k *auditKey) Sign(msg []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.priv == nil {
		return nil, errKeyWiped
	}
	return ed25519.Sign(k.priv, msg), nil
}

// wipe takes the key out of the audit log's signer slot and clears it; a
// nil k is a no-op.
func (k *auditKey) wipe() {
	if k == nil {
		return
	}
	if k.remove != nil {
		k.remove()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.priv)
	k.priv = nil
}

// Close signs a final audit checkpoint (when unlocked) and locks the service.
func (s *Service) Close(ctx context.Context) error {
	err := s.CheckpointNow(ctx)
	s.Lock()
	return err
}

// withMaster runs fn with the master key held under the read lock.
func (s *Service) withMaster(fn func(master []byte, consoleID string) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.master == nil {
		return ErrLocked
	}
	return fn(s.master, s.consoleID)
}

const minPassphrase = 10

func checkPassphrase(p []byte) error {
	if len([]rune(string(p))) < minPassphrase {
		return ErrWeakPassphrase
	}
	return nil
}

// Init creates the console: a random master key, the first officer (an
// admin) with an envelope under passphrase, and the audit signing key. The
// service is unlocked afterwards.
func (s *Service) Init(ctx context.Context, name string, passphrase []byte) (Officer, error) {
	if err := checkName(name); err != nil {
		return Officer{}, err
	}
	if err := checkPassphrase(passphrase); err != nil {
		return Officer{}, err
	}
	master := make([]byte, keySize)
	rand.Read(master)
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	defer clear(seed)
	cid := store.NewID("con")
	now := s.now()
	off := Officer{ID: store.NewID("off"), Name: name, Role: RoleAdmin, CreatedAt: now}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := consoleID(ctx, tx); err == nil {
			return ErrInitialized
		} else if !errors.Is(err, ErrNotInitialized) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO console_identity(id, console_id, key_check, created_at) VALUES (1, ?, ?, ?)`,
			cid, keyCheck(master, cid), store.Time(now)); err != nil {
			return fmt.Errorf("store console identity: %w", store.Classify(err))
		}
		if err := insertOfficer(ctx, tx, off, master, passphrase, s.opts.KDF, cid); err != nil {
			return err
		}
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		clear(priv)
		if _, err := tx.ExecContext(ctx, `INSERT INTO wrapped_keys(name, public, wrapped, created_at) VALUES (?, ?, ?, ?)`,
			auditKeyName, []byte(pub), wrapWith(master, infoConsoleKey, seed, consoleKeyAAD(cid, auditKeyName)), store.Time(now)); err != nil {
			return fmt.Errorf("store audit signing key: %w", store.Classify(err))
		}
		_, err := s.log.Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(name), Action: "console.init", Subject: cid,
			Decision: "ok", Reason: "console initialised; first officer " + name + " (admin)"})
		return err
	})
	if err != nil {
		clear(master)
		return Officer{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockLocked()
	if err := s.setSignerLocked(seed); err != nil {
		clear(master)
		return off, fmt.Errorf("console initialised, but the key service stays locked: %w", err)
	}
	s.master, s.consoleID = master, cid
	s.challengeKey = challengeKey(master, cid)
	return off, nil
}

const auditKeyName = "audit-signing"

// adopt takes a verified master key as the service's (when locked) or checks
// it against the held one in constant time (when unlocked). It takes
// ownership of master.
func (s *Service) adopt(ctx context.Context, master []byte, cid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.master != nil {
		eq := subtle.ConstantTimeCompare(s.master, master) == 1
		clear(master)
		if !eq {
			return errors.New("officer envelope does not hold this console's master key")
		}
		return nil
	}
	var wrapped []byte
	err := s.db.QueryRowContext(ctx, `SELECT wrapped FROM wrapped_keys WHERE name = ?`, auditKeyName).Scan(&wrapped)
	if err != nil {
		clear(master)
		return fmt.Errorf("read audit signing key: %w", store.Classify(err))
	}
	seed, err := unwrapWith(master, infoConsoleKey, wrapped, consoleKeyAAD(cid, auditKeyName))
	if err != nil || len(seed) != ed25519.SeedSize {
		clear(master)
		return errors.New("audit signing key does not open under the master key")
	}
	err = s.setSignerLocked(seed)
	clear(seed)
	if err != nil {
		clear(master)
		return err
	}
	s.master, s.consoleID = master, cid
	s.challengeKey = challengeKey(master, cid)
	return nil
}

// verifyMaster checks a candidate master key against the stored check value.
func verifyMaster(ctx context.Context, q rowQueryer, master []byte) (string, bool, error) {
	var cid string
	var check []byte
	err := q.QueryRowContext(ctx, `SELECT console_id, key_check FROM console_identity WHERE id = 1`).Scan(&cid, &check)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, ErrNotInitialized
	}
	if err != nil {
		return "", false, fmt.Errorf("read console identity: %w", store.Classify(err))
	}
	return cid, subtle.ConstantTimeCompare(keyCheck(master, cid), check) == 1, nil
}

// AuditPublicKey returns the audit signing key's public half. When the
// service is unlocked it comes from the unwrapped private key (so a public
// key swapped in the database is not trusted); otherwise from the store.
func (s *Service) AuditPublicKey(ctx context.Context) (ed25519.PublicKey, bool, error) {
	s.mu.RLock()
	if s.signer != nil {
		pub := s.signer.PublicKey()
		s.mu.RUnlock()
		return pub, true, nil
	}
	s.mu.RUnlock()
	var pub []byte
	err := s.db.QueryRowContext(ctx, `SELECT public FROM wrapped_keys WHERE name = ?`, auditKeyName).Scan(&pub)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, ErrNotInitialized
	}
	if err != nil {
		return nil, false, fmt.Errorf("read audit public key: %w", store.Classify(err))
	}
	return ed25519.PublicKey(pub), false, nil
}

// VerifyAudit verifies the audit log against the console's signing key.
func (s *Service) VerifyAudit(ctx context.Context) (audit.Report, error) {
	pub, _, err := s.AuditPublicKey(ctx)
	if err != nil && !errors.Is(err, ErrNotInitialized) {
		return audit.Report{}, err
	}
	return audit.Verify(ctx, s.db, pub)
}

// Checkpoint signs the audit log's head when at least N entries follow the
// last checkpoint: a catch-up for entries appended while no key was
// in the log's signer slot (before unlock, or by another process). While the
// service is unlocked, its AuditLog has already signed every N entries in their own
// transactions, so this normally finds nothing to do. It does nothing
// while the service is locked.
func (s *Service) Checkpoint(ctx context.Context) error { return s.checkpoint(ctx, false) }

// CheckpointNow signs the audit log's head if anything follows the last
// checkpoint (at shutdown, and before a backup). It does nothing while the
// service is locked.
func (s *Service) CheckpointNow(ctx context.Context) error { return s.checkpoint(ctx, true) }

func (s *Service) checkpoint(ctx context.Context, force bool) error {
	s.mu.RLock()
	k := s.signer
	s.mu.RUnlock()
	if k == nil {
		return nil
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		n, err := audit.SinceCheckpoint(ctx, tx)
		if err != nil {
			return err
		}
		if n == 0 || (!force && n < s.opts.CheckpointEvery) {
			return nil
		}
		_, err = audit.SignCheckpoint(ctx, tx, k, s.now())
		return err
	})
	if errors.Is(err, errKeyWiped) {
		return nil // locked meanwhile
	}
	return err
}

// afterWrite runs after a custody transaction commits. It has nothing left
// to do: AuditLog().Append checkpoints every N entries inside the transaction.
func (s *Service) afterWrite(context.Context) {}

func officerActor(name string) string { return "officer:" + name }
