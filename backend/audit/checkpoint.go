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
	// PRAGMA database_list costs half of its table-valued form in a SELECT.
	rows, err := q.QueryContext(ctx, `PRAGMA database_list`)
	if err != nil {
		return "", fmt.Errorf("read database file name: %w", store.Classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var name, file string
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return "", fmt.Errorf("read database file name: %w", err)
		}
		if name == "main" {
			return file, nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read database file name: %w", store.Classify(err))
	}
	return "", nil
}

// anySigner reports whether any signer is registered (if not, Append need
// not look for one).
func anySigner() bool {
	signers.RLock()
	defer signers.RUnlock()
	return len(signers.byFile) > 0
}

// minEvery is the smallest checkpoint interval of any registered signer
// (0: none registered): an append with fewer entries since the newest
// checkpoint needs no signer, nor the database's file name to find one.
func minEvery() int64 {
	signers.RLock()
	defer signers.RUnlock()
	var m int64
	for _, rs := range signers.byFile {
		for _, r := range rs {
			if m == 0 || r.every < m {
				m = r.every
			}
		}
	}
	return m
}

// head is what Append reads before it inserts.
type head struct {
	seq  int64  // the newest entry (0: none)
	hash string // its hash (GenesisHash: none)
	// With a signer registered somewhere: the entry the newest checkpoint
	// covers (0: none).
	checkpoint int64
}

// readHead reads the log's head and, with withSigner, also the entry the
// newest checkpoint covers, which checkpointAfterAppend needs.
func readHead(ctx context.Context, tx queryer, withSigner bool) (head, error) {
	h := head{hash: GenesisHash}
	var err error
	if withSigner {
		err = tx.QueryRowContext(ctx, `SELECT l.seq, l.hash, (SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints)
			FROM audit_log l ORDER BY l.seq DESC LIMIT 1`).Scan(&h.seq, &h.hash, &h.checkpoint)
	} else {
		err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&h.seq, &h.hash)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		h = head{hash: GenesisHash}
		if withSigner {
			if h.checkpoint, err = lastCheckpoint(ctx, tx); err != nil {
				return head{}, err
			}
		}
	case err != nil:
		return head{}, fmt.Errorf("read audit head: %w", store.Classify(err))
	}
	return h, nil
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

// signerFor returns the newest signer registered for file, or nil.
func signerFor(file string) *registration {
	if file == "" {
		return nil
	}
	signers.RLock()
	defer signers.RUnlock()
	if rs := signers.byFile[file]; len(rs) > 0 {
		return rs[len(rs)-1]
	}
	return nil
}

// checkpointAfterAppend runs in Append's transaction after e was inserted
// (h is the head read before): it signs a checkpoint over e once every
// entries follow the newest one.
func checkpointAfterAppend(ctx context.Context, tx *sql.Tx, e Entry, at string, h head) error {
	if m := minEvery(); m == 0 || e.Seq-h.checkpoint < m {
		return nil // no signer could be due (the common case: no file name query)
	}
	file, err := dbFile(ctx, tx)
	if err != nil {
		return err
	}
	r := signerFor(file)
	if r == nil || e.Seq-h.checkpoint < r.every {
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
	if len(k) != ed25519.PrivateKeySize {
		return nil
	}
	return ed25519.PrivateKey(k).Public().(ed25519.PublicKey)
}

// Sign implements Signer.
func (k KeySigner) Sign(msg []byte) ([]byte, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, errors.New("sign audit checkpoint: no key")
	}
	return ed25519.Sign(ed25519.PrivateKey(k), msg), nil
}
