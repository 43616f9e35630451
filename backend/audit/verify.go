package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"keyholder/backend/store"
)

// A checkpoint signs the head of the log so that removing entries from its
// end is detected as well (a hash chain alone cannot tell a truncated log
// from a short one). The signed message (format v1):
//
//	"keyholder-audit-checkpoint-v1\n" || field(seq) || field(hash) || field(at)
//
// with field as in the entry encoding. The Ed25519 key is the console's
// audit signing key, kept wrapped under the master key by custody. Entries
// appended after the newest checkpoint are protected by the chain only
// until the next checkpoint; while a Signer is registered, Append writes
// one with every Nth entry in the same transaction, and custody signs the
// tail when the console shuts down (see the package doc for what that
// means for truncation).

const checkpointTag = "keyholder-audit-checkpoint-v1\n"

// ErrTampered is wrapped by every *VerifyError.
var ErrTampered = errors.New("audit log does not verify")

// VerifyError names the first entry at which the log stops verifying.
type VerifyError struct {
	Seq     int64  // the first bad (or missing) entry
	Problem string // what is wrong with it
}

func (e *VerifyError) Error() string { return fmt.Sprintf("audit entry %d: %s", e.Seq, e.Problem) }

// Unwrap makes errors.Is(err, ErrTampered) true.
func (e *VerifyError) Unwrap() error { return ErrTampered }

// Report summarises a verified log.
type Report struct {
	Entries        int64  `json:"entries"`
	Head           string `json:"head"`
	Checkpoints    int    `json:"checkpoints"`
	LastCheckpoint int64  `json:"last_checkpoint"`
	// Unsigned is the number of entries after the newest checkpoint.
	Unsigned int64 `json:"unsigned"`
}

// Checkpoint is a signed statement of the log's head.
type Checkpoint struct {
	Seq       int64
	Hash      string
	At        string
	Signature []byte
}

func checkpointMessage(seq int64, hash, at string) []byte {
	b := []byte(checkpointTag)
	for _, f := range []string{strconv.FormatInt(seq, 10), hash, at} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// WriteCheckpoint signs the current head with key and stores the
// checkpoint, unless the head is already checkpointed or the log is empty.
// It returns the head's sequence number.
func WriteCheckpoint(ctx context.Context, tx queryExecer, key ed25519.PrivateKey, now time.Time) (int64, error) {
	return SignCheckpoint(ctx, tx, KeySigner(key), now)
}

// SignCheckpoint is WriteCheckpoint with a Signer.
func SignCheckpoint(ctx context.Context, tx queryExecer, s Signer, now time.Time) (int64, error) {
	seq, hash, err := Head(ctx, tx)
	if err != nil || seq == 0 {
		return seq, err
	}
	at := store.Time(now)
	sig, err := s.Sign(checkpointMessage(seq, hash, at))
	if err != nil {
		return 0, fmt.Errorf("write audit checkpoint: %w", err)
	}
	return seq, insertCheckpoint(ctx, tx, seq, hash, at, sig)
}

// SinceCheckpoint returns how many entries follow the newest checkpoint.
func SinceCheckpoint(ctx context.Context, q queryer) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log WHERE seq > COALESCE((SELECT MAX(seq) FROM audit_checkpoints), 0)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count unsigned audit entries: %w", store.Classify(err))
	}
	return n, nil
}

// Verify checks the whole log: consecutive sequence numbers from 1, every
// entry's hash over its canonical encoding, every link to the previous
// entry, and every checkpoint's signature under pub and its agreement with
// the entry it covers (a checkpoint beyond the last entry means the log was
// truncated). It returns a *VerifyError naming the first bad entry.
func Verify(ctx context.Context, db *store.DB, pub ed25519.PublicKey) (Report, error) {
	var rep Report
	// One read snapshot for entries and checkpoints; read-only so that it
	// does not take the write lock (the store begins writes IMMEDIATE).
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return rep, fmt.Errorf("verify audit log: %w", store.Classify(err))
	}
	defer tx.Rollback()

	rows, err := tx.QueryContext(ctx, `SELECT seq, at, actor, action, subject, decision, reason, evidence_hash, prev_hash, hash FROM audit_log ORDER BY seq`)
	if err != nil {
		return rep, fmt.Errorf("verify audit log: %w", store.Classify(err))
	}
	var first *VerifyError
	fail := func(seq int64, format string, args ...any) {
		if first == nil || seq < first.Seq {
			first = &VerifyError{Seq: seq, Problem: fmt.Sprintf(format, args...)}
		}
	}
	hashes := map[int64]string{}
	want, prev := int64(1), GenesisHash
	for rows.Next() {
		var e Entry
		var at string
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Decision, &e.Reason, &e.EvidenceHash, &e.PrevHash, &e.Hash); err != nil {
			rows.Close()
			return rep, fmt.Errorf("verify audit log: %w", err)
		}
		if first == nil {
			switch {
			case e.Seq != want:
				fail(want, "missing (the log jumps from %d to %d)", want-1, e.Seq)
			case e.PrevHash != prev:
				fail(e.Seq, "does not link to entry %d (previous hash differs): an entry before it was changed, removed or reordered", e.Seq-1)
			case hashOf(canonicalAt(e, at)) != e.Hash:
				fail(e.Seq, "content does not match its hash: the entry was edited")
			}
		}
		hashes[e.Seq] = e.Hash
		rep.Entries++
		rep.Head = e.Hash
		want, prev = e.Seq+1, e.Hash
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("verify audit log: %w", store.Classify(err))
	}
	rows.Close()
	last := want - 1

	crows, err := tx.QueryContext(ctx, `SELECT seq, hash, at, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return rep, fmt.Errorf("verify audit checkpoints: %w", store.Classify(err))
	}
	defer crows.Close()
	for crows.Next() {
		var c Checkpoint
		if err := crows.Scan(&c.Seq, &c.Hash, &c.At, &c.Signature); err != nil {
			return rep, fmt.Errorf("verify audit checkpoints: %w", err)
		}
		rep.Checkpoints++
		rep.LastCheckpoint = c.Seq
		switch {
		case len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, checkpointMessage(c.Seq, c.Hash, c.At), c.Signature):
			fail(c.Seq, "its signed checkpoint has a bad signature")
		case c.Seq > last:
			fail(last+1, "missing: the log ends at entry %d but a signed checkpoint covers up to entry %d (the log was truncated)", last, c.Seq)
		case hashes[c.Seq] != c.Hash:
			fail(c.Seq, "differs from the signed checkpoint of entry %d: the log was rewritten", c.Seq)
		}
	}
	if err := crows.Err(); err != nil {
		return rep, fmt.Errorf("verify audit checkpoints: %w", store.Classify(err))
	}
	rep.Unsigned = last - rep.LastCheckpoint
	if rep.Unsigned < 0 {
		rep.Unsigned = 0
	}
	if first != nil {
		return rep, first
	}
	return rep, nil
}

func canonicalAt(e Entry, at string) []byte {
	fields := []string{
		strconv.FormatInt(e.Seq, 10), at, e.Actor, e.Action, e.Subject,
		e.Decision, e.Reason, e.EvidenceHash, e.PrevHash,
	}
	b := []byte(encodingTag)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Export writes every entry, oldest first, as JSON lines (one Entry object
// per line), so the log can be kept or checked outside the console.
func Export(ctx context.Context, db *store.DB, w io.Writer) (int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, at, actor, action, subject, decision, reason, evidence_hash, prev_hash, hash FROM audit_log ORDER BY seq`)
	if err != nil {
		return 0, fmt.Errorf("export audit log: %w", store.Classify(err))
	}
	defer rows.Close()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var n int64
	for rows.Next() {
		var e Entry
		var at string
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Decision, &e.Reason, &e.EvidenceHash, &e.PrevHash, &e.Hash); err != nil {
			return n, fmt.Errorf("export audit log: %w", err)
		}
		e.At, _ = store.ParseTime(at)
		if err := enc.Encode(e); err != nil {
			return n, fmt.Errorf("export audit log: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("export audit log: %w", store.Classify(err))
	}
	return n, bw.Flush()
}
