package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Batch is statements that run one after another in a transaction, for a
// caller that knows them all before it needs any result. On PostgreSQL
// RunBatch sends them together and the server answers them together: one
// round trip for the whole batch instead of one per statement (a release
// decision on a busy server waits for its round trips far longer than for
// its statements). On SQLite, in process, they run one by one exactly as
// the caller's own ExecContext and QueryContext would run them.
//
// Statements are written as for ExecContext (SQLite's spelling, see
// Dialect). A failing statement ends the batch: RunBatch returns its error
// (classified, as Classify does) and the statements after it do not run;
// on PostgreSQL the transaction is then aborted, as after any failed
// statement.
type Batch struct {
	items []batchItem
}

type batchItem struct {
	query string
	args  []any
	// exec, when set, receives the statement's affected rows.
	exec func(rowsAffected int64) error
	// tag, when set, receives the statement's command tag (PostgreSQL).
	tag func(tag string) error
	// row, when set, receives each result row (a query).
	row func(scan func(dest ...any) error) error
}

// Exec queues a statement whose result is not needed.
func (b *Batch) Exec(query string, args ...any) {
	b.items = append(b.items, batchItem{query: query, args: args})
}

// ExecThen queues a statement and calls then with the number of rows it
// affected, once it ran (an error from then ends the batch).
func (b *Batch) ExecThen(then func(rowsAffected int64) error, query string, args ...any) {
	b.items = append(b.items, batchItem{query: query, args: args, exec: then})
}

// Query queues a query and calls row for each row of its result, with a
// scan that assigns the row's columns to dest: *string, *int, *int64,
// *bool, *[]byte, *sql.NullString, *sql.NullInt64 or *any; a boolean
// column scans into an integer as 0 or 1 (see Dialect). An error from
// row ends the batch.
func (b *Batch) Query(row func(scan func(dest ...any) error) error, query string, args ...any) {
	b.items = append(b.items, batchItem{query: query, args: args, row: row})
}

// ExecThenTag queues a statement and calls then with its command tag
// ("COMMIT", "ROLLBACK", "INSERT 0 1"); PostgreSQL only.
func (b *Batch) ExecThenTag(then func(tag string) error, query string, args ...any) {
	b.items = append(b.items, batchItem{query: query, args: args, tag: then})
}

// Len is how many statements b holds.
func (b *Batch) Len() int { return len(b.items) }

// batchQuery is the query text that carries a *Batch to the connection
// (the batch is its only argument).
const batchQuery = "-- keyholder batch"

// Execer is a *sql.Tx (or a *sql.DB, *sql.Conn: then the batch runs
// outside a transaction of the caller's).
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// RunBatch runs b's statements, in order, in tx (see Batch). An empty
// batch runs nothing.
func RunBatch(ctx context.Context, tx Execer, b *Batch) error {
	if b == nil || len(b.items) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, batchQuery, b)
	return err
}

// batchAtCommitQuery carries a *Batch whose statements go out with the
// transaction's COMMIT (RunBatchAtCommit).
const batchAtCommitQuery = "-- keyholder batch at commit"

// RunBatchAtCommit runs b's statements in tx as its last ones: on
// PostgreSQL they go out together with the COMMIT, one round trip for
// both (a statement that fails makes the commit fail, and nothing of tx is
// committed); on SQLite, and outside a write transaction begun by Tx or
// TxKeyed, they run at once, as RunBatch does. The caller runs no other
// statement in tx after it.
func RunBatchAtCommit(ctx context.Context, tx Execer, b *Batch) error {
	if b == nil || len(b.items) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, batchAtCommitQuery, b)
	return err
}

func isBatchAtCommit(query string, args []driver.NamedValue) (*Batch, bool) {
	if query != batchAtCommitQuery || len(args) != 1 {
		return nil, false
	}
	b, ok := args[0].Value.(*Batch)
	return b, ok
}

// deferWritesQuery switches a transaction to DeferWrites.
const deferWritesQuery = "-- keyholder defer writes"

// DeferWrites lets the rest of tx send its batches of writes late: on
// PostgreSQL a batch (RunBatch) whose statements are all queued with Exec
// no longer goes out at once but in front of the next batch or statement
// of tx, or with the commit; the statements still run in the order they
// were given, and every read still sees every write before it. What is
// saved is a round trip per such batch. The price: the error of a
// deferred statement is returned by a later call (RunBatch, ExecContext,
// QueryContext or the commit), so only a caller that treats any error in
// tx as the failure of all of it may use it (the release engine's
// batches without savepoints). On SQLite it does nothing.
func DeferWrites(ctx context.Context, tx Execer) error {
	_, err := tx.ExecContext(ctx, deferWritesQuery)
	return err
}

// FlushWrites sends the writes DeferWrites left waiting in tx now, and
// returns their error.
func FlushWrites(ctx context.Context, tx Execer) error {
	return RunBatch(ctx, tx, &Batch{items: []batchItem{{query: `SELECT 1`, row: func(func(...any) error) error { return nil }}}})
}

// writesOnly reports whether b holds statements queued with Exec only
// (nothing waits for their results).
func (b *Batch) writesOnly() bool {
	for _, it := range b.items {
		if it.exec != nil || it.row != nil || it.tag != nil {
			return false
		}
	}
	return true
}

// isBatch reports whether a driver call carries a batch, and which.
func isBatch(query string, args []driver.NamedValue) (*Batch, bool) {
	if query != batchQuery || len(args) != 1 {
		return nil, false
	}
	b, ok := args[0].Value.(*Batch)
	return b, ok
}

// checkBatchArg accepts a *Batch argument (the connections' CheckNamedValue).
func checkBatchArg(nv *driver.NamedValue) bool {
	_, ok := nv.Value.(*Batch)
	return ok
}

// TextArray and Int64Array are batch arguments that PostgreSQL receives
// as a text[] and a bigint[] (for unnest); PostgreSQL only.
type (
	TextArray  []string
	Int64Array []int64
)

// batchArgs converts a batch statement's arguments as database/sql would
// for ExecContext: driver.Valuer, integers as int64, a bool as 0 or 1.
func batchArgs(args []any) ([]driver.NamedValue, error) {
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		switch x := a.(type) {
		case bool:
			a = boolValue(x)
		case TextArray:
			out[i] = driver.NamedValue{Ordinal: i + 1, Value: []string(x)}
			continue
		case Int64Array:
			out[i] = driver.NamedValue{Ordinal: i + 1, Value: []int64(x)}
			continue
		}
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out, nil
}

func boolValue(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// runBatchSequential runs b on a SQLite connection, one statement after
// another.
func runBatchSequential(ctx context.Context, c *cachingConn, b *Batch) error {
	for _, it := range b.items {
		args, err := batchArgs(it.args)
		if err != nil {
			return fmt.Errorf("batch statement: %w", err)
		}
		if it.row == nil {
			res, err := c.ExecContext(ctx, it.query, args)
			if err != nil {
				return classify(err)
			}
			if it.exec != nil {
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				if err := it.exec(n); err != nil {
					return err
				}
			}
			continue
		}
		rows, err := c.QueryContext(ctx, it.query, args)
		if err != nil {
			return classify(err)
		}
		vals := make([]driver.Value, len(rows.Columns()))
		for {
			if err = rows.Next(vals); err != nil {
				break
			}
			if err = it.row(func(dest ...any) error { return assignRow(dest, vals) }); err != nil {
				break
			}
		}
		rows.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return classify(err)
		}
	}
	return nil
}

// runBatchPostgres sends b in one pipeline on a pgx connection, inside the
// transaction database/sql has open on it.
func runBatchPostgres(ctx context.Context, conn *pgx.Conn, b *Batch) error {
	var pb pgx.Batch
	for _, it := range b.items {
		args, err := batchArgs(it.args)
		if err != nil {
			return fmt.Errorf("batch statement: %w", err)
		}
		vals := make([]any, len(args))
		for i, a := range args {
			vals[i] = a.Value
		}
		q := pb.Queue(rewriteForPostgres(it.query), vals...)
		if it.row != nil {
			row := it.row
			q.Query(func(rows pgx.Rows) error {
				for rows.Next() {
					vs, err := rows.Values()
					if err != nil {
						return err
					}
					dvs := make([]driver.Value, len(vs))
					for i, v := range vs {
						dvs[i] = v
					}
					if err := row(func(dest ...any) error { return assignRow(dest, dvs) }); err != nil {
						return err
					}
				}
				return rows.Err()
			})
			continue
		}
		then, tag := it.exec, it.tag
		q.Exec(func(ct pgconn.CommandTag) error {
			if tag != nil {
				return tag(ct.String())
			}
			if then != nil {
				return then(ct.RowsAffected())
			}
			return nil
		})
	}
	if err := conn.SendBatch(ctx, &pb).Close(); err != nil {
		return classify(err)
	}
	return nil
}

// assignRow assigns a row's values to dest pointers (see Batch.Query).
func assignRow(dest []any, vals []driver.Value) error {
	if len(dest) != len(vals) {
		return fmt.Errorf("scan: %d destinations for %d columns", len(dest), len(vals))
	}
	for i, d := range dest {
		if err := assign(d, vals[i]); err != nil {
			return fmt.Errorf("scan column %d: %w", i+1, err)
		}
	}
	return nil
}

func assign(dest any, v driver.Value) error {
	switch x := v.(type) {
	case bool:
		v = boolValue(x)
	case int32:
		v = int64(x)
	case int16:
		v = int64(x)
	case time.Time:
		v = Time(x)
	}
	switch d := dest.(type) {
	case *any:
		*d = v
		return nil
	case *sql.NullString:
		if v == nil {
			*d = sql.NullString{}
			return nil
		}
		var s string
		if err := assign(&s, v); err != nil {
			return err
		}
		*d = sql.NullString{String: s, Valid: true}
		return nil
	case *sql.NullInt64:
		if v == nil {
			*d = sql.NullInt64{}
			return nil
		}
		var n int64
		if err := assign(&n, v); err != nil {
			return err
		}
		*d = sql.NullInt64{Int64: n, Valid: true}
		return nil
	}
	switch x := v.(type) {
	case string:
		switch d := dest.(type) {
		case *string:
			*d = x
			return nil
		case *[]byte:
			*d = []byte(x)
			return nil
		}
	case []byte:
		switch d := dest.(type) {
		case *[]byte:
			*d = append([]byte(nil), x...)
			return nil
		case *string:
			*d = string(x)
			return nil
		}
	case int64:
		switch d := dest.(type) {
		case *int64:
			*d = x
			return nil
		case *int:
			*d = int(x)
			return nil
		case *bool:
			*d = x != 0
			return nil
		}
	case nil:
		switch d := dest.(type) {
		case *[]byte:
			*d = nil
			return nil
		}
	}
	return fmt.Errorf("cannot scan %T into %T", v, dest)
}
