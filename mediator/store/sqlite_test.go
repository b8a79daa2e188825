package store_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/mediator/mediator/store"
)

type testArgs struct {
	N int `json:"n"`
}

func (testArgs) Kind() string { return "test" }

func openStore(t *testing.T, path string) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, s.StartQueue(context.Background(), &river.Config{}))
	return s
}

func TestSQLite_CreatedOnFirstStartAndKeptAcrossRestarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "mediator.db")
	s := openStore(t, path)
	_, err := os.Stat(path)
	require.NoError(t, err, "the file and its directories are created")
	require.NoError(t, s.Ping(ctx))

	inserted, err := s.Enqueue(ctx, "claim", "a", testArgs{N: 1})
	require.NoError(t, err)
	require.True(t, inserted)
	require.NoError(t, s.MarkDelivered(ctx, "claim", "a", "report-1"))
	require.NoError(t, s.SavePerson(ctx, "insuree-1", "person-1"))
	require.NoError(t, s.SetSetting(ctx, "subscription_id", "sub-1"))
	require.NoError(t, s.Close())

	s = openStore(t, path)
	defer s.Close()
	inserted, err = s.Enqueue(ctx, "claim", "a", testArgs{N: 1})
	require.NoError(t, err)
	require.False(t, inserted, "the receipt survived the restart")
	result, ok, err := s.Delivered(ctx, "claim", "a")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "report-1", result)
	person, ok, err := s.Person(ctx, "insuree-1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "person-1", person)
	v, ok, err := s.Setting(ctx, "subscription_id")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "sub-1", v)
}

func TestSQLite_Enqueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	defer s.Close()

	t.Run("OncePerKindAndKey", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		inserted := 0
		for range 10 {
			wg.Go(func() {
				ok, err := s.Enqueue(ctx, "claim", "same", testArgs{})
				require.NoError(t, err)
				if ok {
					mu.Lock()
					inserted++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Equal(t, 1, inserted)
		ok, err := s.Enqueue(ctx, "feedback", "same", testArgs{})
		require.NoError(t, err)
		require.True(t, ok, "kinds are separate")
	})
	t.Run("NotDeliveredUntilMarked", func(t *testing.T) {
		_, err := s.Enqueue(ctx, "claim", "pending", testArgs{})
		require.NoError(t, err)
		_, ok, err := s.Delivered(ctx, "claim", "pending")
		require.NoError(t, err)
		require.False(t, ok)
		_, ok, err = s.Delivered(ctx, "claim", "never-seen")
		require.NoError(t, err)
		require.False(t, ok)
	})
	t.Run("Missing", func(t *testing.T) {
		_, ok, err := s.Person(ctx, "nobody")
		require.NoError(t, err)
		require.False(t, ok)
		_, ok, err = s.Setting(ctx, "nothing")
		require.NoError(t, err)
		require.False(t, ok)
	})
}

func TestSQLite_EnqueueNeedsQueue(t *testing.T) {
	t.Parallel()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Enqueue(context.Background(), "claim", "a", testArgs{})
	require.ErrorContains(t, err, "queue not started")
}

func TestOpen_DatabaseURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "x.db"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = store.Open(ctx, "mysql://x")
	require.Error(t, err)
}

func TestSQLite_OneServerPerFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	working := &river.Config{Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}}, Workers: river.NewWorkers()}
	river.AddWorker(working.Workers, river.WorkFunc(func(context.Context, *river.Job[testArgs]) error { return nil }))

	first, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	require.NoError(t, first.StartQueue(ctx, working))

	second, err := store.OpenSQLite(ctx, path)
	require.NoError(t, err)
	defer second.Close()
	err = second.StartQueue(ctx, working)
	require.ErrorContains(t, err, "another mediator is serving")

	// An insert-only client (the jobs command) may share the file.
	third := openStore(t, path)
	defer third.Close()
	_, err = third.Enqueue(ctx, "claim", "x", testArgs{})
	require.NoError(t, err)

	require.NoError(t, first.StopQueue(ctx))
	require.NoError(t, first.Close())
	require.NoError(t, second.StartQueue(ctx, working), "the lock is released on close")
	require.NoError(t, second.StopQueue(ctx))
}
