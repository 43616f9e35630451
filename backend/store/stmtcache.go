package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"reflect"
	"strings"
	"sync"
)

// Statement cache. modernc's SQLite parses and plans every statement that
// database/sql runs from a query string (Exec, Query, QueryRow on a DB or a
// Tx) and throws the plan away afterwards; for the short statements of a
// release, parsing costs as much as running them. The connections Open
// hands to database/sql therefore keep each query string they ran prepared,
// per connection, and run it again from its prepared form: callers keep
// passing query strings, in a transaction or not, and every package that
// runs statements (custody, attest, audit, fleet, release) gains without
// preparing anything itself.
//
// A statement in the cache is used by one call at a time. When its rows are
// still open (a caller iterating a query runs the same query again, nested)
// the second call runs uncached, exactly as without the cache. Scripts
// (several statements in one string) and very long strings are not cached:
// they run once (migrations) and SQLite cannot keep them prepared anyway.

// stmtCacheSize bounds the statements one connection keeps prepared; the
// least recently used one is finalized when a new one needs the room.
// Queries built with literals (LIMIT n, search filters) come and go; the
// statements of the hot paths stay.
const stmtCacheSize = 96

// maxCachedQuery is the longest query string the cache keeps.
const maxCachedQuery = 4096

// cacheable reports whether query is worth keeping prepared: one statement
// (no ';' before trailing blanks) and not too long.
func cacheable(query string) bool {
	if len(query) > maxCachedQuery {
		return false
	}
	if i := strings.IndexByte(query, ';'); i >= 0 && strings.TrimSpace(query[i+1:]) != "" {
		return false
	}
	return true
}

// innerConn is what the wrapped driver connection implements (modernc's
// connection implements all of it).
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
}

// cachingConnector opens driver connections through base and wraps them.
type cachingConnector struct {
	base driver.Connector
	size int
}

func (c *cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ic, ok := dc.(innerConn)
	if !ok {
		return dc, nil // a driver without the context interfaces: no cache
	}
	return newCachingConn(ic, c.size), nil
}

func (c *cachingConnector) Driver() driver.Driver { return c.base.Driver() }

// cachedStmt is one prepared statement of a connection.
type cachedStmt struct {
	query string
	stmt  driver.Stmt
	busy  bool // its rows are open
	elem  *list.Element
}

// stmtCacheStats counts what a connection's cache did (tests read them).
type stmtCacheStats struct {
	hits, prepares, bypasses, evictions int
}

// cachingConn is a driver connection that keeps the statements it ran
// prepared. database/sql uses a connection from one goroutine at a time;
// the mutex only makes that independent of the caller.
type cachingConn struct {
	inner innerConn
	size  int

	mu     sync.Mutex
	stmts  map[string]*cachedStmt
	lru    list.List // front: most recently used; values are *cachedStmt
	closed bool
	stats  stmtCacheStats
}

func newCachingConn(inner innerConn, size int) *cachingConn {
	if size <= 0 {
		size = stmtCacheSize
	}
	return &cachingConn{inner: inner, size: size, stmts: map[string]*cachedStmt{}}
}

// Unwrap returns the driver's own connection (modernc's Limit and similar
// helpers look through wrappers this way).
func (c *cachingConn) Unwrap() driver.Conn { return c.inner }

// acquire returns the cached statement for query, preparing it if needed,
// and marks it busy; nil (and no error) means: run the query uncached.
func (c *cachingConn) acquire(ctx context.Context, query string) (*cachedStmt, error) {
	if !cacheable(query) {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, driver.ErrBadConn
	}
	if cs := c.stmts[query]; cs != nil {
		if cs.busy {
			c.stats.bypasses++
			return nil, nil
		}
		cs.busy = true
		c.lru.MoveToFront(cs.elem)
		c.stats.hits++
		return cs, nil
	}
	st, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stats.prepares++
	cs := &cachedStmt{query: query, stmt: st, busy: true}
	cs.elem = c.lru.PushFront(cs)
	c.stmts[query] = cs
	// Make room: finalize the least recently used idle statements.
	for e := c.lru.Back(); len(c.stmts) > c.size && e != nil; {
		prev := e.Prev()
		if old := e.Value.(*cachedStmt); !old.busy {
			c.lru.Remove(e)
			delete(c.stmts, old.query)
			old.stmt.Close()
			c.stats.evictions++
		}
		e = prev
	}
	return cs, nil
}

// release makes cs available to the next call.
func (c *cachingConn) release(cs *cachedStmt) {
	c.mu.Lock()
	cs.busy = false
	c.mu.Unlock()
}

// CheckNamedValue lets a *Batch through to ExecContext (RunBatch); every
// other value gets database/sql's default conversion.
func (c *cachingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if checkBatchArg(nv) {
		return nil
	}
	return driver.ErrSkip
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if b, ok := isBatch(query, args); ok {
		return driver.RowsAffected(0), runBatchSequential(ctx, c, b)
	}
	if b, ok := isBatchAtCommit(query, args); ok {
		return driver.RowsAffected(0), runBatchSequential(ctx, c, b)
	}
	if query == deferWritesQuery {
		return driver.RowsAffected(0), nil
	}
	cs, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	defer c.release(cs)
	return cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		return nil, err
	}
	return &cachedRows{Rows: rows, conn: c, cs: cs}, nil
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(context.Background(), query)
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.inner.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

// Close finalizes the cached statements, then closes the connection (SQLite
// refuses to close a connection with statements left).
func (c *cachingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	for q, cs := range c.stmts {
		cs.stmt.Close()
		delete(c.stmts, q)
	}
	c.lru.Init()
	c.mu.Unlock()
	return c.inner.Close()
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// cachedRows are the rows of a cached statement; closing them makes the
// statement available again (the driver resets it).
type cachedRows struct {
	driver.Rows
	conn *cachingConn
	cs   *cachedStmt
	done bool
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if !r.done {
		r.done = true
		r.conn.release(r.cs)
	}
	return err
}

// The column type interfaces database/sql looks for (Rows.ColumnTypes).

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
