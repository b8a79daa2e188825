package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A store whose commits fail (here: a read-only connection, as on a full
// disk or a read-only file system) still answers Ping; CheckWrite tells.
func TestSQLite_CheckWriteFailsWhileCommitsFail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "mediator.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.NoError(t, s.CheckWrite(ctx))

	_, err = s.db.ExecContext(ctx, `PRAGMA query_only = ON`)
	require.NoError(t, err)
	require.NoError(t, s.Ping(ctx), "reads still work")
	require.Error(t, s.CheckWrite(ctx))

	_, err = s.db.ExecContext(ctx, `PRAGMA query_only = OFF`)
	require.NoError(t, err)
	require.NoError(t, s.CheckWrite(ctx))
}
