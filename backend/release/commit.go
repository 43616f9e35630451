package release

import (
	"context"
	"database/sql"
	"fmt"

	"keyholder/backend/fleet"
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

// maxBatch bounds the decisions one commit carries.
const maxBatch = 128

type job struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan error
}

// tx runs fn in a write transaction shared with other queued decisions and
// returns fn's error, or the commit's.
func (s *Service) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	s.startCommitter.Do(func() { go s.commitLoop() })
	j := &job{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return fmt.Errorf("release engine closed")
	}
	return <-j.done
}

// Close stops the committer after the queued decisions.
func (s *Service) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

func (s *Service) commitLoop() {
	for {
		var first *job
		select {
		case first = <-s.jobs:
		case <-s.closed:
			return
		}
		batch := []*job{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		s.runBatch(batch)
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

// batchTx reuses prepared statements across the decisions of one batch:
// modernc's SQLite parses every statement anew, and parsing is most of the
// committer's work. Only the committer goroutine uses it.
type batchTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (b *batchTx) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := b.stmts[query]; st != nil {
		return st, nil
	}
	st, err := b.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	b.stmts[query] = st
	return st, nil
}

func (b *batchTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := b.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (b *batchTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := b.prepare(ctx, query)
	if err != nil {
		return b.tx.QueryRowContext(ctx, query, args...) // reports the same error
	}
	return st.QueryRowContext(ctx, args...)
}

// w returns the statement-caching wrapper of tx when tx is the batch in
// progress (job functions run on the committer goroutine), else tx.
func (s *Service) w(tx *sql.Tx) fleet.Writer {
	if b := s.batch; b != nil && b.tx == tx {
		return b
	}
	return tx
}

func (s *Service) runBatch(batch []*job) {
	results := make([]error, len(batch))
	err := s.db.Tx(context.Background(), func(tx *sql.Tx) error {
		b := &batchTx{tx: tx, stmts: map[string]*sql.Stmt{}}
		s.batch = b
		defer func() {
			s.batch = nil
			for _, st := range b.stmts {
				st.Close()
			}
		}()
		for i, j := range batch {
			if err := j.ctx.Err(); err != nil {
				results[i] = err
				continue
			}
			if _, err := b.ExecContext(j.ctx, `SAVEPOINT decision`); err != nil {
				return fmt.Errorf("savepoint: %w", store.Classify(err))
			}
			if err := runJob(j.fn, tx); err != nil {
				results[i] = err
				if _, rerr := tx.Exec(`ROLLBACK TO decision`); rerr != nil {
					return fmt.Errorf("roll back a decision: %w", store.Classify(rerr))
				}
			}
			if _, err := b.ExecContext(context.Background(), `RELEASE decision`); err != nil {
				return fmt.Errorf("release savepoint: %w", store.Classify(err))
			}
		}
		return nil
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
