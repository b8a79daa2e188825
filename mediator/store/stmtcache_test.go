package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStmtCache_ReusesAndNestsStatements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sql.Open(sqliteDriverName, "file:"+filepath.Join(t.TempDir(), "c.db"))
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1)

	// A script of several statements, twice: not cached as one statement.
	for range 2 {
		_, err = db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS t (v INTEGER); CREATE TABLE IF NOT EXISTS u (w TEXT);`)
		require.NoError(t, err)
	}
	for i := range 5 {
		_, err := db.ExecContext(ctx, `INSERT INTO t (v) VALUES (?)`, i)
		require.NoError(t, err)
	}

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	outer, err := tx.QueryContext(ctx, `SELECT v FROM t ORDER BY v`)
	require.NoError(t, err)
	var got []int
	for outer.Next() {
		var v int
		require.NoError(t, outer.Scan(&v))
		// The same text again while the first rows are open.
		var n int
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE v <= ?`, v).Scan(&n))
		require.Equal(t, v+1, n)
		inner, err := tx.QueryContext(ctx, `SELECT v FROM t ORDER BY v`)
		require.NoError(t, err)
		k := 0
		for inner.Next() {
			k++
		}
		require.NoError(t, inner.Close())
		require.Equal(t, 5, k)
		got = append(got, v)
	}
	require.NoError(t, outer.Err())
	require.NoError(t, outer.Close())
	require.NoError(t, tx.Commit())
	require.Equal(t, []int{0, 1, 2, 3, 4}, got)

	// The cached statement is reused with other arguments.
	for v := range 5 {
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE v <= ?`, v).Scan(&n))
		require.Equal(t, v+1, n)
	}
}

// TestStmtCache_StablePlans checks that the store's connections plan without
// looking at bound values (SQLite's query planner stability guarantee): a
// partial index whose condition only a bound value satisfies is used by a
// plain modernc connection, which therefore compiles the statement again
// for every new value, and not by the store's.
func TestStmtCache_StablePlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plan := func(driverName string) string {
		db, err := sql.Open(driverName, "file:"+filepath.Join(t.TempDir(), "p.db"))
		require.NoError(t, err)
		defer db.Close()
		_, err = db.ExecContext(ctx, `CREATE TABLE t (a INTEGER, b INTEGER); CREATE INDEX t_a_when_b ON t (a) WHERE b = 1`)
		require.NoError(t, err)
		rows, err := db.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT a FROM t WHERE b = ? AND a > 0`, 1)
		require.NoError(t, err)
		defer rows.Close()
		var steps []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
			steps = append(steps, detail)
		}
		require.NoError(t, rows.Err())
		return strings.Join(steps, "; ")
	}
	require.Contains(t, plan("sqlite"), "t_a_when_b", "a plain connection plans with the bound value")
	require.NotContains(t, plan(sqliteDriverName), "t_a_when_b", "the store's connections must not plan with bound values")
}
