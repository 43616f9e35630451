package release

import (
	"context"
	"database/sql"
	"errors"
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
//
// There every statement is a round trip to the server, so a batch sends
// them in as few as it can (store.Batch): a decision's reads together,
// its writes with the next decision's statements (store.DeferWrites), the
// audit entries with the commit (audit.AppendAllLast). It runs without
// savepoints first; a failing decision rolls the whole batch back and it
// runs again with them (runBatch).

// pgCommitters is how many batches one engine runs at once on PostgreSQL.
// A batch there is a conversation with the server and waits far more than
// it computes; one committer alone
// leaves both the processors and the server idle while decisions queue
// behind it. Keyed batches (the guests' decisions) of several committers
// run side by side, as those of several replicas do; they meet only at
// the audit lock, which each holds from its appends to its commit.
const pgCommitters = 2

// pgReaders is how many requests of one engine read their volume and
// policy from PostgreSQL at once (Service.reads).
const pgReaders = 2

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

// On PostgreSQL a commit costs more still (three round trips, the audit
// lock, the server's WAL flush) and each of the committers sees only its
// share of the decisions: the gaps between them are longer, and so is the
// wait that is worth it.
const (
	pgBusyGap   = 10 * time.Millisecond
	pgMaxLinger = 2 * time.Millisecond
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
	s.startCommitter.Do(func() {
		for range s.committers {
			go s.commitLoop()
		}
	})
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
	gap, wait := busyGap, maxLinger
	if s.db.Dialect() == store.Postgres {
		gap, wait = pgBusyGap, pgMaxLinger
	}
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
		busy := time.Since(lastCommit) < gap
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
				linger.Reset(wait)
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
	// waits for the disk. On PostgreSQL a batch spends its time waiting for
	// the server's answers, not on a processor: it takes no slot, which
	// would idle a processor that a verifier could use.
	onCPU := s.db.Dialect() != store.Postgres
	if onCPU {
		s.acquireCPU(context.Background(), prioCommit)
	}
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
	// Each decision runs inside a savepoint, so that a failing one rolls
	// back only its own statements. On PostgreSQL that costs two round
	// trips per decision, for a failure that hardly ever happens: there a
	// batch runs without savepoints first, and when a decision fails the
	// whole transaction rolls back and the batch runs again, with them
	// (a batch of one decision needs no second run: its failure is the
	// batch's). Decisions are written to run again from the start (they
	// set what they report afresh each time).
	guarded := s.db.Dialect() != store.Postgres
	var err error
	for {
		clear(results)
		err = begin(context.Background(), func(tx *sql.Tx) error { return s.runDecisions(tx, batch, results, guarded, offCPU) })
		if errors.Is(err, errDecisionFailed) {
			if len(batch) > 1 {
				guarded = true
				continue
			}
			err = nil // results holds the decision's error
		}
		break
	}
	for i, j := range batch {
		switch {
		case err != nil:
			j.done <- err // nothing of the batch was committed
		default:
			j.done <- results[i]
		}
	}
}

// errDecisionFailed rolls back a batch that ran without savepoints when
// one of its decisions failed.
var errDecisionFailed = errors.New("a decision of the batch failed")

// runDecisions runs batch's decisions in tx, each in a savepoint when
// guarded, and appends their audit entries; results receives each
// decision's error. Unguarded, the first failing decision ends the batch
// with errDecisionFailed.
func (s *Service) runDecisions(tx *sql.Tx, batch []*job, results []error, guarded bool, offCPU func()) error {
	defer offCPU()
	var b *batchAudit
	if s.deferAudit {
		b = &batchAudit{}
		s.batches.Store(tx, b)
		defer s.batches.Delete(tx)
	}
	if !guarded {
		// Any failure fails the whole run (and the batch runs again,
		// guarded): a decision's writes may wait for the next decision's
		// statements or the audit's (store.DeferWrites).
		if err := store.DeferWrites(context.Background(), tx); err != nil {
			return fmt.Errorf("defer writes: %w", store.Classify(err))
		}
	}
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if !guarded {
			if err := runJob(j.fn, tx); err != nil {
				results[i] = err
				return errDecisionFailed
			}
			continue
		}
		if _, err := tx.ExecContext(context.Background(), `SAVEPOINT decision`); err != nil {
			return fmt.Errorf("savepoint: %w", store.Classify(err))
		}
		mark := b.len()
		if err := runJob(j.fn, tx); err != nil {
			results[i] = err
			b.truncate(mark) // its entries go with its statements
			if _, rerr := tx.Exec(`ROLLBACK TO decision`); rerr != nil {
				return fmt.Errorf("roll back a decision: %w", store.Classify(rerr))
			}
		}
		if _, err := tx.ExecContext(context.Background(), `RELEASE decision`); err != nil {
			return fmt.Errorf("release savepoint: %w", store.Classify(err))
		}
	}
	if guarded {
		return s.flushAudit(tx, b)
	}
	// The last decision's writes go out with the audit's first statements,
	// or here when there are no entries: their failure is a decision's.
	noEntries := b.len() == 0
	err := s.flushAudit(tx, b)
	if err == nil && noEntries {
		err = store.FlushWrites(context.Background(), tx)
	}
	if err != nil {
		if len(batch) == 1 && results[0] == nil {
			results[0] = err
		}
		return errDecisionFailed
	}
	return nil
}

// batchAudit holds the audit entries of one batch's decisions until the
// batch's end (PostgreSQL). Only the goroutine running the batch uses it.
type batchAudit struct{ entries []audit.Entry }

func (b *batchAudit) len() int {
	if b == nil {
		return 0
	}
	return len(b.entries)
}

func (b *batchAudit) truncate(n int) {
	if b != nil {
		clear(b.entries[n:])
		b.entries = b.entries[:n]
	}
}

// appendAudit appends e to the audit log in tx. In a batch of a committer
// on PostgreSQL it only checks e and keeps it for flushAudit, which
// appends the batch's entries, in the order of their decisions, at the
// batch's end; elsewhere (and on SQLite) it appends at once.
func (s *Service) appendAudit(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
	if s.deferAudit {
		if v, ok := s.batches.Load(tx); ok {
			if err := audit.Check(e); err != nil {
				return err
			}
			if e.At.IsZero() {
				e.At = s.now()
			}
			b := v.(*batchAudit)
			b.entries = append(b.entries, e)
			return nil
		}
	}
	_, err := s.audit.Append(ctx, tx, e)
	return err
}

// flushAudit appends the entries appendAudit kept for the batch in tx.
func (s *Service) flushAudit(tx *sql.Tx, b *batchAudit) error {
	if b == nil {
		return nil
	}
	err := s.audit.AppendAllLast(context.Background(), tx, b.entries)
	b.truncate(0)
	return err
}
