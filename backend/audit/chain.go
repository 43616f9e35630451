package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"keyholder/backend/store"
)

// The canonical encoding of an entry, the input of its hash (format v1):
//
//	hash = hex(SHA-256(enc))
//	enc  = "keyholder-audit-v1\n" || field(seq) || field(at) || field(actor) ||
//	       field(action) || field(subject) || field(decision) || field(reason) ||
//	       field(evidence_hash) || field(prev_hash)
//	field(s) = uint32_be(len(s)) || s
//
// seq is the decimal sequence number (1, 2, ...), at the time as store.Time
// writes it (UTC, nanoseconds), every other field its UTF-8 text exactly as
// stored. prev_hash of entry 1 is GenesisHash; entry n>1 carries the hash of
// entry n-1. Length prefixes make the encoding injective: no two different
// entries share an encoding. testdata/vectors.txt pins an example.

// GenesisHash is the prev_hash of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

const encodingTag = "keyholder-audit-v1\n"

// Field limits keep a single entry (and an export line) bounded.
const (
	maxShortField = 256
	maxReason     = 4096
)

// ErrInvalidEntry means an entry to append is malformed.
var ErrInvalidEntry = errors.New("invalid audit entry")

// Canonical returns the canonical encoding of e (see the format above).
func Canonical(e Entry) []byte { return canonicalAt(e, store.Time(e.At)) }

// HashEntry returns the hash of e's canonical encoding, as stored in Hash.
func HashEntry(e Entry) string {
	return hashOf(Canonical(e))
}

// Append adds e to the log inside the caller's transaction, so that a
// decision and its audit entry commit (or roll back) together. Seq,
// PrevHash and Hash are assigned here; a zero At means now. It returns the
// entry as stored. Appends are serialised (store.LockAudit: a no-op on
// SQLite, whose write transactions are serial already; an advisory lock
// held to the end of tx on PostgreSQL, where console replicas append to
// one log), so two appends never share a sequence number and the chain
// never forks.
//
// tx must be a transaction on l's database. While l holds a Signer
// (SetSigner), Append also writes the signed checkpoint over e when e makes
// the number of entries after the newest checkpoint reach N, in this same
// transaction; without one it appends e unsigned.
func (l *Log) Append(ctx context.Context, tx *sql.Tx, e Entry) (Entry, error) {
	out, err := l.appendAll(ctx, tx, []Entry{e})
	if err != nil {
		return Entry{}, err
	}
	return out[0], nil
}

// AppendAll is Append for several entries, in their order, with one lock
// and one read of the head for all of them (a batch of decisions appends
// its entries together). Nothing is appended when one is malformed.
func (l *Log) AppendAll(ctx context.Context, tx *sql.Tx, es []Entry) error {
	_, err := l.appendAll(ctx, tx, es)
	return err
}

// AppendAllLast is AppendAll for a transaction's last statements (the
// caller runs none in tx after it): on PostgreSQL the entries go out with
// the COMMIT (store.RunBatchAtCommit), so that the audit lock, which every
// appender waits for, is held one round trip less; if they fail, the
// commit fails.
func (l *Log) AppendAllLast(ctx context.Context, tx *sql.Tx, es []Entry) error {
	if len(es) == 0 {
		return nil
	}
	for _, e := range es {
		if err := Check(e); err != nil {
			return err
		}
	}
	if l.db != nil && l.db.Dialect() == store.Postgres {
		_, err := l.appendAllPipelined(ctx, tx, es, true)
		return err
	}
	return l.AppendAll(ctx, tx, es)
}

func (l *Log) appendAll(ctx context.Context, tx *sql.Tx, es []Entry) ([]Entry, error) {
	if len(es) == 0 {
		return nil, nil
	}
	for _, e := range es {
		if err := Check(e); err != nil {
			return nil, err
		}
	}
	if l.db != nil && l.db.Dialect() == store.Postgres {
		return l.appendAllPipelined(ctx, tx, es, false)
	}
	if err := store.Lock(ctx, tx, store.LockAudit); err != nil {
		return nil, fmt.Errorf("append audit entry: %w", err)
	}
	r := l.registered()
	h, err := readHead(ctx, tx, r != nil)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(es))
	for _, e := range es {
		e, at := h.link(e)
		_, err = tx.ExecContext(ctx, insertEntrySQL,
			e.Seq, at, e.Actor, e.Action, e.Subject, e.Decision, e.Reason, e.EvidenceHash, e.PrevHash, e.Hash)
		if err != nil {
			return nil, fmt.Errorf("append audit entry: %w", store.Classify(err))
		}
		signed, err := checkpointAfterAppend(ctx, tx, r, e, at, h)
		if err != nil {
			return nil, err
		}
		h.seq, h.hash = e.Seq, e.Hash
		if signed {
			h.checkpoint = e.Seq
		}
		out = append(out, e)
	}
	return out, nil
}

// appendAllPipelined is appendAll on PostgreSQL, where every statement is
// a round trip to the server and the audit lock is held from the first of
// them to the commit: the lock and the head in one round trip (the head
// query runs after the lock is granted and reads what the holder before
// committed), then every entry and checkpoint in one more (store.Batch),
// or with the commit (atCommit).
// The entries are checked by the caller.
func (l *Log) appendAllPipelined(ctx context.Context, tx *sql.Tx, es []Entry, atCommit bool) ([]Entry, error) {
	r := l.registered()
	h := head{hash: GenesisHash}
	var b store.Batch
	store.LockBatch(&b, store.LockAudit)
	b.Query(func(scan func(...any) error) error {
		return scan(&h.seq, &h.hash, &h.checkpoint)
	}, `SELECT COALESCE((SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1), 0),
		COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), ''),
		(SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints)`)
	if err := store.RunBatch(ctx, tx, &b); err != nil {
		return nil, fmt.Errorf("append audit entry: read audit head: %w", err)
	}
	if h.seq == 0 {
		h.hash = GenesisHash
	}
	var ins store.Batch
	var cols entryColumns
	var checkpoints []func(*store.Batch)
	out := make([]Entry, 0, len(es))
	for _, e := range es {
		e, at := h.link(e)
		cols.add(e, at)
		if sig := checkpointSignature(r, e, at, h); sig != nil {
			checkpoints = append(checkpoints, func(b *store.Batch) { b.Exec(insertCheckpointSQL, e.Seq, e.Hash, at, sig) })
			h.checkpoint = e.Seq
		}
		h.seq, h.hash = e.Seq, e.Hash
		out = append(out, e)
	}
	// Every entry in one statement (PostgreSQL's unnest over one array a
	// column), then the checkpoints.
	ins.Exec(`INSERT INTO audit_log(seq, at, actor, action, subject, decision, reason, evidence_hash, prev_hash, hash)
		SELECT * FROM unnest(CAST(? AS bigint[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]),
			CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]))`,
		cols.seq, cols.at, cols.actor, cols.action, cols.subject, cols.decision, cols.reason, cols.evidence, cols.prev, cols.hash)
	for _, c := range checkpoints {
		c(&ins)
	}
	run := store.RunBatch
	if atCommit {
		run = store.RunBatchAtCommit
	}
	if err := run(ctx, tx, &ins); err != nil {
		return nil, fmt.Errorf("append audit entry: %w", err)
	}
	return out, nil
}

// link makes e the entry after h: its reason cut to maxReason, its time
// set (now, if zero) and its sequence number, previous hash and hash. at
// is the time as stored; e.At is round-tripped through it, so that the
// hash computed here equals the one Verify recomputes from the row.
func (h head) link(e Entry) (Entry, string) {
	if len(e.Reason) > maxReason {
		e.Reason = e.Reason[:maxReason]
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	at := store.Time(e.At)
	e.At, _ = store.ParseTime(at)
	e.Seq, e.PrevHash = h.seq+1, h.hash
	e.Hash = HashEntry(e)
	return e, at
}

// entryColumns are entries to insert, a slice per column.
type entryColumns struct {
	seq                                                                store.Int64Array
	at, actor, action, subject, decision, reason, evidence, prev, hash store.TextArray
}

func (c *entryColumns) add(e Entry, at string) {
	c.seq = append(c.seq, e.Seq)
	c.at = append(c.at, at)
	c.actor = append(c.actor, e.Actor)
	c.action = append(c.action, e.Action)
	c.subject = append(c.subject, e.Subject)
	c.decision = append(c.decision, e.Decision)
	c.reason = append(c.reason, e.Reason)
	c.evidence = append(c.evidence, e.EvidenceHash)
	c.prev = append(c.prev, e.PrevHash)
	c.hash = append(c.hash, e.Hash)
}

const insertEntrySQL = `INSERT INTO audit_log(seq, at, actor, action, subject, decision, reason, evidence_hash, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// Check returns the ErrInvalidEntry that Append would refuse e with, or
// nil: a caller that appends e later (at the end of its transaction) learns
// now whether it can.
func Check(e Entry) error {
	if e.Actor == "" || e.Action == "" {
		return fmt.Errorf("%w: actor and action are required", ErrInvalidEntry)
	}
	for _, f := range []string{e.Actor, e.Action, e.Subject, e.Decision, e.EvidenceHash} {
		if len(f) > maxShortField {
			return fmt.Errorf("%w: field longer than %d bytes", ErrInvalidEntry, maxShortField)
		}
	}
	return nil
}

// AppendDB is Append in a transaction of its own, for entries that record
// no other change (a failed login, for example).
func (l *Log) AppendDB(ctx context.Context, e Entry) (Entry, error) {
	var out Entry
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = l.Append(ctx, tx, e)
		return err
	})
	return out, err
}

// Head returns the newest entry's sequence number and hash (0 and
// GenesisHash for an empty log).
func Head(ctx context.Context, q queryer) (int64, string, error) {
	var seq int64
	var hash string
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, GenesisHash, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read audit head: %w", store.Classify(err))
	}
	return seq, hash, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryExecer is a *sql.Tx or a *store.DB.
type queryExecer interface {
	queryer
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
