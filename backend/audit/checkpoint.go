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

// Signer signs audit checkpoints. custody puts one in its Log (the
// console's Ed25519 audit key, unwrapped under the master key) while the
// key service is unlocked; this package never sees the key itself, only the signatures.
type Signer interface {
	// PublicKey is the key the checkpoints verify under.
	PublicKey() ed25519.PublicKey
	// Sign returns the Ed25519 signature of msg. An error (the key was wiped
	// because the service locked meanwhile) means no checkpoint now: the
	// append goes ahead and a later one catches up.
	Sign(msg []byte) ([]byte, error)
}

// Log is one database's audit log, the value every appender holds. Its
// signer slot is empty until custody puts the console's audit key there at
// unlock (SetSigner) and empty again from lock; while it holds a signer,
// Append writes the signed checkpoints itself. A Log whose slot is empty
// (never set, or a tool working on a locked store) appends unsigned entries;
// the first append through a Log with a signer, or a custody Checkpoint,
// signs them later. Appenders share one Log per console (custody hands it
// out with AuditLog), so that all of them sign with the key custody holds.
// Make one with NewLog; a Log is safe for concurrent use.
type Log struct {
	db *store.DB

	mu  sync.RWMutex
	reg *registration // nil: no signer
}

// NewLog returns the log of db with an empty signer slot.
func NewLog(db *store.DB) *Log { return &Log{db: db} }

// DB is the database the log is kept in.
func (l *Log) DB() *store.DB { return l.db }

type registration struct {
	signer Signer
	every  int64
}

// SetSigner makes Append sign checkpoints with s: whenever an append makes
// the number of entries after the newest checkpoint reach every, a
// checkpoint over that entry is written in the appending transaction, so
// that it commits (or rolls back, also to a savepoint) with the entry.
// every <= 0 means 64. It replaces the signer set before. The returned
// function empties the slot again if s is still in it (call it when the key
// is wiped); it is idempotent.
func (l *Log) SetSigner(s Signer, every int64) (remove func(), err error) {
	if s == nil {
		return nil, errors.New("set audit signer: nil signer")
	}
	if every <= 0 {
		every = 64
	}
	r := &registration{signer: s, every: every}
	l.mu.Lock()
	l.reg = r
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.reg == r {
			l.reg = nil
		}
	}, nil
}

// registered is the signer in the slot, or nil.
func (l *Log) registered() *registration {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.reg
}

// head is what Append reads before it inserts.
type head struct {
	seq  int64  // the newest entry (0: none)
	hash string // its hash (GenesisHash: none)
	// With a signer in the log's slot: the entry the newest checkpoint
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

// checkpointAfterAppend runs in Append's transaction after e was inserted
// (h is the head read before, r the signer Append found in the slot): it
// signs a checkpoint over e once every entries follow the newest one.
// It reports whether it wrote one.
func checkpointAfterAppend(ctx context.Context, tx *sql.Tx, r *registration, e Entry, at string, h head) (bool, error) {
	sig := checkpointSignature(r, e, at, h)
	if sig == nil {
		return false, nil
	}
	return true, insertCheckpoint(ctx, tx, e.Seq, e.Hash, at, sig)
}

// checkpointSignature is the signature of the checkpoint over e that an
// append of e must write (h is the head before e), or nil: no signer, not
// yet every entries after the newest checkpoint, or the signer was wiped
// meanwhile (a later append catches up).
func checkpointSignature(r *registration, e Entry, at string, h head) []byte {
	if r == nil || e.Seq-h.checkpoint < r.every {
		return nil
	}
	sig, err := r.signer.Sign(checkpointMessage(e.Seq, e.Hash, at))
	if err != nil {
		return nil
	}
	return sig
}

const insertCheckpointSQL = `INSERT INTO audit_checkpoints(seq, hash, at, signature) VALUES (?, ?, ?, ?)
		ON CONFLICT(seq) DO NOTHING`

func insertCheckpoint(ctx context.Context, tx queryExecer, seq int64, hash, at string, sig []byte) error {
	_, err := tx.ExecContext(ctx, insertCheckpointSQL, seq, hash, at, sig)
	if err != nil {
		return fmt.Errorf("write audit checkpoint: %w", store.Classify(err))
	}
	return nil
}

// KeySigner is a Signer over a private key held by the caller (tests and
// tools; custody sets its own, which it can wipe).
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
