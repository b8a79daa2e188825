package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"

	"modernc.org/sqlite"
)

// sqliteDriverName is the SQLite driver with a prepared-statement cache.
//
// River's SQLite driver sends its queries as text through database/sql,
// which has SQLite parse and plan each one again on every call; parsing was
// the largest cost of the mediator under load. The cache keeps one prepared
// statement per SQL text on each connection, and modernc's statements are
// reusable once their rows are closed.
const sqliteDriverName = "sqlite-stmtcache"

func init() {
	sql.Register(sqliteDriverName, stmtCacheDriver{base: &sqlite.Driver{}})
}

// commitCounter, when set (by the store's benchmarks), counts the commits
// of the SQLite connections opened afterwards, each write transaction's and
// each statement's outside one. It is nil in production: no hook runs.
var commitCounter atomic.Pointer[atomic.Int64]

// maxCachedStmts bounds a connection's cache; River's statements are a few
// dozen texts.
const maxCachedStmts = 256

type stmtCacheDriver struct {
	base driver.Driver
}

// Open implements driver.Driver.
func (d stmtCacheDriver) Open(name string) (driver.Conn, error) {
	c, err := d.base.Open(name)
	if err != nil {
		return nil, err
	}
	stablePlans(c)
	if n := commitCounter.Load(); n != nil {
		if h, ok := c.(sqlite.HookRegisterer); ok {
			h.RegisterCommitHook(func() int32 { n.Add(1); return 0 })
		}
	}
	return &stmtCacheConn{Conn: c, stmts: map[string]*cachedStmt{}}, nil
}

// stmtCacheConn is a connection that reuses its prepared statements.
// database/sql uses a connection from one goroutine at a time.
type stmtCacheConn struct {
	driver.Conn
	stmts map[string]*cachedStmt
}

// cachedStmt is a prepared statement and whether rows of it are open.
type cachedStmt struct {
	stmt  driver.Stmt
	inUse bool
}

// prepared returns the cached statement for query, or a fresh one (release
// closes it) while the cached one's rows are still being read.
func (c *stmtCacheConn) prepared(ctx context.Context, query string) (*cachedStmt, func(), error) {
	if cs, ok := c.stmts[query]; ok && !cs.inUse {
		cs.inUse = true
		return cs, func() { cs.inUse = false }, nil
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	cs := &cachedStmt{stmt: st, inUse: true}
	if _, busy := c.stmts[query]; busy {
		return cs, func() { _ = st.Close() }, nil
	}
	if len(c.stmts) >= maxCachedStmts {
		c.closeAll()
	}
	c.stmts[query] = cs
	return cs, func() { cs.inUse = false }, nil
}

func (c *stmtCacheConn) closeAll() {
	for q, cs := range c.stmts {
		if !cs.inUse {
			_ = cs.stmt.Close()
			delete(c.stmts, q)
		}
	}
}

// ExecContext implements driver.ExecerContext.
func (c *stmtCacheConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, release, err := c.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	defer release()
	return cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

// QueryContext implements driver.QueryerContext.
func (c *stmtCacheConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, release, err := c.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		release()
		return nil, err
	}
	return &releasingRows{Rows: rows, release: release}, nil
}

// PrepareContext implements driver.ConnPrepareContext: an explicit Prepare
// gets its own statement, closed by its user.
func (c *stmtCacheConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

// BeginTx implements driver.ConnBeginTx.
func (c *stmtCacheConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

// Ping implements driver.Pinger.
func (c *stmtCacheConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// ResetSession implements driver.SessionResetter.
func (c *stmtCacheConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// IsValid implements driver.Validator.
func (c *stmtCacheConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// CheckNamedValue implements driver.NamedValueChecker.
func (c *stmtCacheConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// Close implements driver.Conn.
func (c *stmtCacheConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.stmt.Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.Conn.Close())...)
}

// releasingRows gives the statement back when its rows are closed.
type releasingRows struct {
	driver.Rows
	release func()
}

// Close implements driver.Rows.
func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

// ColumnTypeDatabaseTypeName forwards to the driver's rows when they have it.
func (r *releasingRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}
