package release

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

// Group commit. Every decision the engine makes runs in a write
// transaction with its fleet rows and its audit entry; under a boot storm
// thousands of such transactions queue for SQLite's single writer, and each
// synchronous commit waits for the disk. The committer runs queued decisions
// in one transaction, each inside its own savepoint (a failing decision
// rolls back only its own statements), and commits once: every caller still
// learns of its decision only after it is durable, and the audit chain stays
// in commit order.

// On PostgreSQL, where several replicas commit to one database, a batch of
// decisions for guests (each naming the keys it reads and writes: its VM,
// volume, challenge, launch and evidence) runs in a keyed transaction
// (store.TxKeyed): it holds those keys' locks, not the writer lock, so the
// replicas' batches run side by side. Their audit entries, which form one
// chain, are appended together at the end of the batch (appendAudit), so
// the audit lock, which every batch needs, is held only from those appends
// to the commit instead of from the batch's first decision. A batch with
// any other job (an officer's decision, the expiry) is an ordinary write
// transaction, serial with everything, as on SQLite.

// maxBatch bounds the decisions one commit carries.
const maxBatch = 128

// A commit costs about as much CPU as two decisions do: the transaction,
// a WAL frame for every page its decisions touched (the audit log's and
// the history's newest pages are touched by every one of them) and the
// sync. Under a steady load short of a storm the committer would commit
// almost every decision on its own, spending a fifth of the machine on
// commits and leaving less for everything else, which is what makes the
// queues and the latency tail. So while decisions keep coming (the last
// commit ended less than busyGap ago) it waits up to maxLinger for
// lingerFor of them before it commits; an idle console commits at once.
// (bench release at 70 % of the ECDSA ceiling: 20-70 µs less CPU per
// release, and a lower p99, for up to half a millisecond more latency.)
const (
	busyGap   = 2 * time.Millisecond
	maxLinger = 500 * time.Microsecond
	lingerFor = 4
)

type job struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	keys []string // nil: fn needs an ordinary (serial) write transaction
	done chan error
}

// tx runs fn in a write transaction shared with other queued decisions and
// returns fn's error, or the commit's.
func (s *Service) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.txKeyed(ctx, nil, fn)
}

// txKeyed is tx for a decision whose reads and writes concern only what
// keys name (store.TxKeyed); nil keys: an ordinary write transaction.
func (s *Service) txKeyed(ctx context.Context, keys []string, fn func(*sql.Tx) error) error {
	s.startCommitter.Do(func() { go s.commitLoop() })
	j := &job{ctx: ctx, fn: fn, keys: keys, done: make(chan error, 1)}
	select {
	case s.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return fmt.Errorf("release engine closed")
	}
	return <-j.done
}

// stmtContext is the context the statements of a request run under: ctx's
// values without its cancellation. A request cancelled before its decision
// starts is skipped (runBatch checks), and one cancelled while waiting for a
// CPU slot gives up there; the few statements of a decision that has
// started run to the end, as the rest of its batch does. A cancellable
// context would cost two goroutines per statement (database/sql's and the
// driver's cancellation watchers), many times the statement itself.
func stmtContext(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// Close stops the committer after the queued decisions.
func (s *Service) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

func (s *Service) commitLoop() {
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	var lastCommit time.Time
	for {
		var first *job
		select {
		case first = <-s.jobs:
		case <-s.closed:
			return
		}
		batch := []*job{first}
		busy := time.Since(lastCommit) < busyGap
		lingering := false
	drain:
		for len(batch) < maxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
				continue
			default:
			}
			if !busy || len(batch) >= lingerFor {
				break
			}
			if !lingering {
				lingering = true
				linger.Reset(maxLinger)
			}
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			case <-linger.C:
				break drain
			case <-s.closed:
				break drain
			}
		}
		if lingering {
			linger.Stop() // Go 1.23 timers: no stale tick survives Stop
		}
		s.runBatch(batch)
		lastCommit = time.Now()
	}
}

// runJob runs one decision; a panic fails that decision instead of killing
// the committer (which every later decision waits for).
func runJob(fn func(*sql.Tx) error, tx *sql.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decision panicked: %v", r)
		}
	}()
	return fn(tx)
}

func (s *Service) runBatch(batch []*job) {
	results := make([]error, len(batch))
	// The decisions run on a processor slot of their own, taken before any
	// verifier or sealer waiting for one, and given back before the commit
	// waits for the disk.
	s.acquireCPU(context.Background(), prioCommit)
	onCPU := true
	offCPU := func() {
		if onCPU {
			onCPU = false
			s.releaseCPU()
		}
	}
	defer offCPU()
	// Keyed decisions only: a keyed transaction over all their keys.
	var keys []string
	for _, j := range batch {
		if j.keys == nil {
			keys = nil
			break
		}
		keys = append(keys, j.keys...)
	}
	begin := s.db.Tx
	if keys != nil {
		begin = func(ctx context.Context, fn func(*sql.Tx) error) error { return s.db.TxKeyed(ctx, keys, fn) }
	}
	// Statements run from query strings; the store keeps them prepared per
	// connection (store/stmtcache.go), across batches.
	err := begin(context.Background(), func(tx *sql.Tx) error {
		defer offCPU()
		if s.deferAudit {
			s.deferred = s.deferred[:0]
			s.batchTx.Store(tx)
			defer s.batchTx.Store(nil)
		}
		for i, j := range batch {
			if err := j.ctx.Err(); err != nil {
				results[i] = err
				continue
			}
			if _, err := tx.ExecContext(context.Background(), `SAVEPOINT decision`); err != nil {
				return fmt.Errorf("savepoint: %w", store.Classify(err))
			}
			mark := len(s.deferred)
			if err := runJob(j.fn, tx); err != nil {
				results[i] = err
				s.deferred = s.deferred[:mark] // its entries go with its statements
				if _, rerr := tx.Exec(`ROLLBACK TO decision`); rerr != nil {
					return fmt.Errorf("roll back a decision: %w", store.Classify(rerr))
				}
			}
			if _, err := tx.ExecContext(context.Background(), `RELEASE decision`); err != nil {
				return fmt.Errorf("release savepoint: %w", store.Classify(err))
			}
		}
		return s.flushAudit(tx)
	})
	for i, j := range batch {
		switch {
		case err != nil:
			j.done <- err // nothing of the batch was committed
		default:
			j.done <- results[i]
		}
	}
}

// appendAudit appends e to the audit log in tx. In a batch of the
// committer on PostgreSQL it only checks e and keeps it for flushAudit,
// which appends the batch's entries, in the order of their decisions, at
// the batch's end; elsewhere (and on SQLite) it appends at once.
func (s *Service) appendAudit(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
	if s.deferAudit && s.batchTx.Load() == tx {
		if err := audit.Check(e); err != nil {
			return err
		}
		if e.At.IsZero() {
			e.At = s.now()
		}
		s.deferred = append(s.deferred, e)
		return nil
	}
	_, err := s.audit.Append(ctx, tx, e)
	return err
}

// flushAudit appends the entries appendAudit kept for the batch in tx.
func (s *Service) flushAudit(tx *sql.Tx) error {
	err := s.audit.AppendAll(context.Background(), tx, s.deferred)
	clear(s.deferred)
	s.deferred = s.deferred[:0]
	return err
}
