package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"keyholder/backend/store"
)

// Signer signs audit checkpoints. custody registers one (the console's
// Ed25519 audit key, unwrapped under the master key) while the key service
// is unlocked; this package never sees the key itself, only the signatures.
type Signer interface {
	// PublicKey is the key the checkpoints verify under.
	PublicKey() ed25519.PublicKey
	// Sign returns the Ed25519 signature of msg. An error (the key was wiped
	// because the service locked meanwhile) means no checkpoint now: the
	// append goes ahead and a later one catches up.
	Sign(msg []byte) ([]byte, error)
}

// signers are the registered checkpoint signers, by database file (the path
// SQLite itself reports, so that Append, which sees only a *sql.Tx, can find
// the signer of the database it writes to).
var signers struct {
	sync.RWMutex
	byFile map[string][]*registration
}

type registration struct {
	signer Signer
	every  int64
}

// SetSigner makes Append sign checkpoints for db's log with s: whenever an
// append makes the number of entries after the newest checkpoint reach
// every, a checkpoint over that entry is written in the appending
// transaction, so that it commits (or rolls back, also to a savepoint) with
// the entry. every <= 0 means 64. The returned function removes the
// registration (call it when the key is wiped); it is idempotent. When
// several signers are registered for one file, the newest is used.
func SetSigner(ctx context.Context, db *store.DB, s Signer, every int64) (remove func(), err error) {
	if s == nil {
		return nil, errors.New("set audit signer: nil signer")
	}
	if every <= 0 {
		every = 64
	}
	file, err := dbFile(ctx, db)
	if err != nil {
		return nil, err
	}
	if file == "" {
		return nil, errors.New("set audit signer: the database has no file name")
	}
	r := &registration{signer: s, every: every}
	signers.Lock()
	if signers.byFile == nil {
		signers.byFile = map[string][]*registration{}
	}
	signers.byFile[file] = append(signers.byFile[file], r)
	signers.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			signers.Lock()
			defer signers.Unlock()
			rs := signers.byFile[file]
			for i := range rs {
				if rs[i] == r {
					rs = append(rs[:i:i], rs[i+1:]...)
					break
				}
			}
			if len(rs) == 0 {
				delete(signers.byFile, file)
			} else {
				signers.byFile[file] = rs
			}
		})
	}, nil
}

// dbFile is the main database's file as SQLite names it.
func dbFile(ctx context.Context, q queryer) (string, error) {
	var file string
	err := q.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file)
	if err != nil {
		return "", fmt.Errorf("read database file name: %w", store.Classify(err))
	}
	return file, nil
}

// signerFor returns the signer registered for the database tx writes to,
// or nil. It costs nothing while no signer is registered at all.
func signerFor(ctx context.Context, tx queryer) (*registration, error) {
	signers.RLock()
	none := len(signers.byFile) == 0
	signers.RUnlock()
	if none {
		return nil, nil
	}
	file, err := dbFile(ctx, tx)
	if err != nil {
		return nil, err
	}
	signers.RLock()
	defer signers.RUnlock()
	if rs := signers.byFile[file]; len(rs) > 0 {
		return rs[len(rs)-1], nil
	}
	return nil, nil
}

// lastCheckpoint is the sequence number the newest checkpoint covers (0:
// none).
func lastCheckpoint(ctx context.Context, q queryer) (int64, error) {
	var seq int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("read newest audit checkpoint: %w", store.Classify(err))
	}
	return seq, nil
}

// checkpointAfterAppend runs in Append's transaction after e was inserted:
// it signs a checkpoint over e once every entries follow the newest one.
func checkpointAfterAppend(ctx context.Context, tx *sql.Tx, e Entry, at string) error {
	r, err := signerFor(ctx, tx)
	if err != nil || r == nil {
		return err
	}
	last, err := lastCheckpoint(ctx, tx)
	if err != nil {
		return err
	}
	if e.Seq-last < r.every {
		return nil
	}
	sig, err := r.signer.Sign(checkpointMessage(e.Seq, e.Hash, at))
	if err != nil {
		return nil // locked meanwhile: a later append catches up
	}
	return insertCheckpoint(ctx, tx, e.Seq, e.Hash, at, sig)
}

func insertCheckpoint(ctx context.Context, tx queryExecer, seq int64, hash, at string, sig []byte) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints(seq, hash, at, signature) VALUES (?, ?, ?, ?)
		ON CONFLICT(seq) DO NOTHING`, seq, hash, at, sig)
	if err != nil {
		return fmt.Errorf("write audit checkpoint: %w", store.Classify(err))
	}
	return nil
}

// KeySigner is a Signer over a private key held by the caller (tests and
// tools; custody registers its own, which it can wipe).
type KeySigner ed25519.PrivateKey

// PublicKey implements Signer.
func (k KeySigner) PublicKey() ed25519.PublicKey {
	return ed25519.PrivateKey(k).Public().(ed25519.PublicKey)
}

// Sign implements Signer.
func (k KeySigner) Sign(msg []byte) ([]byte, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, errors.New("sign audit checkpoint: no key")
	}
	return ed25519.Sign(ed25519.PrivateKey(k), msg), nil
}
