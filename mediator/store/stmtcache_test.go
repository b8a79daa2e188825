package store

import (
	"context"
	"database/sql"
	"path/filepath"
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
