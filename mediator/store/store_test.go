package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

type testArgs struct {
	N int `json:"n"`
}

func (testArgs) Kind() string { return "test" }

func openStore(t *testing.T, url string) storetype.Store {
	t.Helper()
	s, err := store.Open(context.Background(), url)
	require.NoError(t, err)
	require.NoError(t, s.StartQueue(context.Background(), &river.Config{}))
	return s
}

// backends runs f once per store: SQLite always, PostgreSQL when
// TEST_DATABASE_URL is set (skipped with a message otherwise).
func backends(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		f(t, "sqlite://"+filepath.Join(t.TempDir(), "nested", "dir", "mediator.db"))
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		f(t, storetest.PostgresURL(t))
	})
}

func TestSQLite_CreatedOnFirstStart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "mediator.db")
	s := openStore(t, "sqlite://"+path)
	defer s.Close()
	_, err := os.Stat(path)
	require.NoError(t, err, "the file and its directories are created")
}

func TestStore_KeptAcrossRestarts(t *testing.T) {
	t.Parallel()
	backends(t, testKeptAcrossRestarts)
}

func testKeptAcrossRestarts(t *testing.T, url string) {
	ctx := context.Background()
	s := openStore(t, url)
	require.NoError(t, s.Ping(ctx))

	inserted, err := s.Enqueue(ctx, "claim", "a", testArgs{N: 1})
	require.NoError(t, err)
	require.True(t, inserted)
	require.NoError(t, s.MarkDelivered(ctx, "claim", "a", "report-1"))
	require.NoError(t, s.SavePerson(ctx, "insuree-1", "person-1"))
	require.NoError(t, s.SetSetting(ctx, "subscription_id", "sub-1"))
	require.NoError(t, s.Close())

	s = openStore(t, url)
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

func TestStore_Enqueue(t *testing.T) {
	t.Parallel()
	backends(t, testEnqueue)
}

func testEnqueue(t *testing.T, url string) {
	ctx := context.Background()
	s := openStore(t, url)
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
	third := openStore(t, "sqlite://"+path)
	defer third.Close()
	_, err = third.Enqueue(ctx, "claim", "x", testArgs{})
	require.NoError(t, err)

	require.NoError(t, first.StopQueue(ctx))
	require.NoError(t, first.Close())
	require.NoError(t, second.StartQueue(ctx, working), "the lock is released on close")
	require.NoError(t, second.StopQueue(ctx))
}

func TestStore_QueueStatsAndJobs(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		defer s.Close()
		for _, key := range []string{"a", "b", "c"} {
			_, err := s.Enqueue(ctx, "claim", key, testArgs{})
			require.NoError(t, err)
		}
		stats, err := s.QueueStats(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, stats["test"].Depth)
		require.WithinDuration(t, time.Now(), stats["test"].Oldest, time.Minute)

		jobs, err := s.ListJobs(ctx, storetype.JobFilter{Limit: 10})
		require.NoError(t, err)
		require.Len(t, jobs, 3)
		require.Greater(t, jobs[0].ID, jobs[2].ID, "newest first")
		page, err := s.ListJobs(ctx, storetype.JobFilter{Limit: 1, Before: jobs[0].ID})
		require.NoError(t, err)
		require.Equal(t, []int64{jobs[1].ID}, []int64{page[0].ID}, "the next older job")
		page, err = s.ListJobs(ctx, storetype.JobFilter{Limit: 10, Before: jobs[2].ID})
		require.NoError(t, err)
		require.Empty(t, page)
		page, err = s.ListJobs(ctx, storetype.JobFilter{Limit: 10, Kinds: []string{"other"}})
		require.NoError(t, err)
		require.Empty(t, page)
		j, err := s.GetJob(ctx, jobs[0].ID)
		require.NoError(t, err)
		require.Equal(t, "test", j.Kind)
	})
}

// A job kept as failed (cancelled after a permanent error) leaves the depth
// and the oldest age, and is counted apart for the operator.
func TestStore_QueueStatsCountsFailedJobs(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		defer s.Close()
		_, err := s.Enqueue(ctx, "claim", "permanent", testArgs{N: 1})
		require.NoError(t, err)
		stats, err := s.QueueStats(ctx)
		require.NoError(t, err)
		require.Equal(t, storetype.QueueStat{Depth: 1, Oldest: stats["test"].Oldest}, stats["test"])

		cfg := &river.Config{Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}}, Workers: river.NewWorkers()}
		river.AddWorker(cfg.Workers, river.WorkFunc(func(context.Context, *river.Job[testArgs]) error {
			return river.JobCancel(errors.New("permanent"))
		}))
		require.NoError(t, s.StartQueue(ctx, cfg))
		require.Eventually(t, func() bool {
			stats, err = s.QueueStats(ctx)
			return err == nil && stats["test"].Failed == 1
		}, 10*time.Second, 10*time.Millisecond)
		require.Equal(t, storetype.QueueStat{Failed: 1}, stats["test"], "no depth, no oldest age")
		require.NoError(t, s.StopQueue(ctx))
	})
}

func TestPostgres_ReplicasStartAtOnce(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := store.Open(context.Background(), url)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "migrations are serialised")
	}
}

// Two replicas whose group commits take the same receipts in opposite
// orders at once wait for each other instead of deadlocking (PostgreSQL
// aborts one transaction of a deadlock, failing every intake in it): each
// intake succeeds and each key is inserted once.
func TestPostgres_ReplicasBatchTheSameKeys(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	ctx := context.Background()
	a, b := openStore(t, url), openStore(t, url)
	defer a.Close()
	defer b.Close()
	const n = 300
	var inserted atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		for r, s := range []storetype.Store{a, b} {
			key := fmt.Sprintf("claim-%d", i)
			if r == 1 {
				key = fmt.Sprintf("claim-%d", n-1-i)
			}
			wg.Go(func() {
				ok, err := s.Enqueue(ctx, "claim", key, testArgs{N: i})
				assert.NoError(t, err)
				if ok {
					inserted.Add(1)
				}
			})
		}
	}
	wg.Wait()
	require.EqualValues(t, n, inserted.Load(), "each key inserted by one replica")
}

func TestStore_CheckWrite(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		s := openStore(t, url)
		ctx := context.Background()
		require.NoError(t, s.CheckWrite(ctx))
		require.NoError(t, s.CheckWrite(ctx), "again: the health row is updated")
		require.NoError(t, s.StopQueue(ctx))
		require.NoError(t, s.Close())
		require.Error(t, s.CheckWrite(ctx))
	})
}

// A backup taken while a server works the store holds every commit, those
// still in the WAL included, in one file.
func TestBackup_WhileTheStoreIsInUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(dir, "mediator.db")
	s := openStore(t, url)
	t.Cleanup(func() { s.Close() })
	for i := range 20 {
		inserted, err := s.Enqueue(ctx, "test", fmt.Sprint(i), testArgs{N: i})
		require.NoError(t, err)
		require.True(t, inserted)
	}
	require.NoError(t, s.SetSetting(ctx, "watermark", "w1"))
	_, err := os.Stat(filepath.Join(dir, "mediator.db-wal"))
	require.NoError(t, err, "recent commits are in the WAL")

	dest := filepath.Join(t.TempDir(), "backup.db")
	require.NoError(t, store.Backup(ctx, url, dest))
	entries, err := os.ReadDir(filepath.Dir(dest))
	require.NoError(t, err)
	require.Len(t, entries, 1, "one self-contained file: %v", entries)

	require.ErrorContains(t, store.Backup(ctx, url, dest), "exists", "an existing file is never overwritten")

	b := openStore(t, "sqlite://"+dest)
	defer b.Close()
	v, ok, err := b.Setting(ctx, "watermark")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "w1", v)
	jobs, err := b.ListJobs(ctx, storetype.JobFilter{Limit: 100})
	require.NoError(t, err)
	require.Len(t, jobs, 20, "the jobs are in the backup")

	require.ErrorIs(t, store.Backup(ctx, "postgres://u@127.0.0.1/db", filepath.Join(t.TempDir(), "x")), store.ErrBackupPostgres)
}

func TestStore_EnqueueDigest(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		defer s.Close()

		inserted, previous, err := s.EnqueueDigest(ctx, "feedback", "doc-1", "digest-a", testArgs{N: 1})
		require.NoError(t, err)
		require.True(t, inserted)
		require.Empty(t, previous)

		inserted, previous, err = s.EnqueueDigest(ctx, "feedback", "doc-1", "digest-b", testArgs{N: 2})
		require.NoError(t, err)
		require.False(t, inserted, "a repeat is not queued again")
		require.Equal(t, "digest-a", previous, "the digest of what was received first")

		inserted, previous, err = s.EnqueueDigest(ctx, "feedback", "doc-1", "digest-a", testArgs{N: 3})
		require.NoError(t, err)
		require.False(t, inserted)
		require.Equal(t, "digest-a", previous, "a repeat does not replace the digest")

		inserted, err = s.Enqueue(ctx, "claim", "c-1", testArgs{})
		require.NoError(t, err)
		require.True(t, inserted)
		inserted, previous, err = s.EnqueueDigest(ctx, "claim", "c-1", "digest-c", testArgs{})
		require.NoError(t, err)
		require.False(t, inserted)
		require.Empty(t, previous, "a receipt recorded without a digest says nothing")

		require.NoError(t, s.MarkDelivered(ctx, "feedback", "doc-1", "Communication/1"))
		_, previous, err = s.EnqueueDigest(ctx, "feedback", "doc-1", "digest-b", testArgs{})
		require.NoError(t, err)
		require.Equal(t, "digest-a", previous, "the delivery record keeps the digest")

		jobs, err := s.ListJobs(ctx, storetype.JobFilter{Limit: 10})
		require.NoError(t, err)
		require.Len(t, jobs, 2, "one job per receipt")
	})
}

// Concurrent repeats of one key share SQLite's group commit or race on
// PostgreSQL's unique key: one is inserted, every other reads its digest.
func TestStore_EnqueueDigestConcurrentRepeats(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		defer s.Close()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var inserted []string
		previous := map[string]int{}
		for i := range 10 {
			digest := fmt.Sprintf("digest-%d", i)
			wg.Go(func() {
				ok, prev, err := s.EnqueueDigest(ctx, "feedback", "same", digest, testArgs{})
				require.NoError(t, err)
				mu.Lock()
				defer mu.Unlock()
				if ok {
					inserted = append(inserted, digest)
				} else {
					previous[prev]++
				}
			})
		}
		wg.Wait()
		require.Len(t, inserted, 1)
		require.Equal(t, map[string]int{inserted[0]: 9}, previous, "every repeat read the digest of the one inserted")
	})
}

// oldSQLiteReceipt and oldPostgresReceipt are mediator_receipt, with one
// delivered receipt, as stores created before receipts kept a digest have it.
const (
	oldSQLiteReceipt = `CREATE TABLE mediator_receipt (
	kind TEXT NOT NULL, key TEXT NOT NULL, received_at TEXT NOT NULL, delivered_at TEXT, result TEXT,
	PRIMARY KEY (kind, key)) WITHOUT ROWID;
INSERT INTO mediator_receipt (kind, key, received_at, delivered_at, result)
VALUES ('feedback', 'old-doc', '2025-01-01T00:00:00Z', '2025-01-01T00:00:01Z', 'Communication/7');`
	oldPostgresReceipt = `CREATE TABLE mediator_receipt (
	kind text NOT NULL, key text NOT NULL, received_at timestamptz NOT NULL DEFAULT now(),
	delivered_at timestamptz, result text, PRIMARY KEY (kind, key));
INSERT INTO mediator_receipt (kind, key, delivered_at, result) VALUES ('feedback', 'old-doc', now(), 'Communication/7');`
)

// A store created before receipts kept a digest is upgraded in place when
// it opens: its receipts are kept, with an unknown digest, and new ones get
// theirs.
func TestStore_UpgradesReceiptsWithoutDigest(t *testing.T) {
	t.Parallel()
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "old.db")
		db, err := sql.Open("sqlite", "file:"+path)
		require.NoError(t, err)
		_, err = db.Exec(oldSQLiteReceipt)
		require.NoError(t, err)
		require.NoError(t, db.Close())
		testUpgradesReceipts(t, "sqlite://"+path)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		url := storetest.PostgresURL(t)
		conn, err := pgx.Connect(context.Background(), url)
		require.NoError(t, err)
		_, err = conn.Exec(context.Background(), oldPostgresReceipt)
		require.NoError(t, err)
		require.NoError(t, conn.Close(context.Background()))
		testUpgradesReceipts(t, url)
	})
}

func testUpgradesReceipts(t *testing.T, url string) {
	ctx := context.Background()
	for start := range 2 { // the second start finds the store upgraded
		s := openStore(t, url)
		result, ok, err := s.Delivered(ctx, "feedback", "old-doc")
		require.NoError(t, err)
		require.True(t, ok, "start %d: the old receipt is kept", start)
		require.Equal(t, "Communication/7", result)

		inserted, previous, err := s.EnqueueDigest(ctx, "feedback", "old-doc", "digest-new", testArgs{})
		require.NoError(t, err)
		require.False(t, inserted, "start %d: the old receipt still answers a repeat", start)
		require.Empty(t, previous, "start %d: an old receipt's digest is unknown", start)

		inserted, previous, err = s.EnqueueDigest(ctx, "feedback", fmt.Sprint("new-doc-", start), "digest-1", testArgs{})
		require.NoError(t, err)
		require.True(t, inserted)
		require.Empty(t, previous)
		_, previous, err = s.EnqueueDigest(ctx, "feedback", fmt.Sprint("new-doc-", start), "digest-2", testArgs{})
		require.NoError(t, err)
		require.Equal(t, "digest-1", previous, "start %d: new receipts keep their digest", start)
		require.NoError(t, s.Close())
	}
}

// Intakes, person records and delivery records made at once share commits
// on SQLite; each is committed before its call returns, so all of them are
// there after a restart.
func TestStore_ConcurrentWritesAllCommitted(t *testing.T) {
	t.Parallel()
	backends(t, testConcurrentWritesAllCommitted)
}

func testConcurrentWritesAllCommitted(t *testing.T, url string) {
	ctx := context.Background()
	s := openStore(t, url)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key, insuree := fmt.Sprintf("claim-%d", i), fmt.Sprintf("insuree-%d", i)
			ok, err := s.Enqueue(ctx, "claim", key, testArgs{N: i})
			assert.NoError(t, err)
			assert.True(t, ok)
			assert.NoError(t, s.SavePerson(ctx, insuree, "first-"+insuree))
			assert.NoError(t, s.SavePerson(ctx, insuree, "person-"+insuree), "a later record replaces the person")
			assert.NoError(t, s.MarkDelivered(ctx, "claim", key, "report-"+key))
		})
	}
	wg.Wait()
	require.NoError(t, s.Close())

	s = openStore(t, url)
	defer s.Close()
	for i := range n {
		key, insuree := fmt.Sprintf("claim-%d", i), fmt.Sprintf("insuree-%d", i)
		person, ok, err := s.Person(ctx, insuree)
		require.NoError(t, err)
		require.True(t, ok, insuree)
		require.Equal(t, "person-"+insuree, person)
		result, ok, err := s.Delivered(ctx, "claim", key)
		require.NoError(t, err)
		require.True(t, ok, key)
		require.Equal(t, "report-"+key, result)
	}
}

// Before its queue starts (an operator command), the SQLite store records a
// person directly.
func TestSQLite_SavePersonWithoutQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "mediator.db"))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.SavePerson(ctx, "insuree-1", "person-1"))
	person, ok, err := s.Person(ctx, "insuree-1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "person-1", person)
}

// TryLock is held until unlock: a second TryLock of the same name fails, of
// another name succeeds, and after unlock (called twice, harmlessly) the
// name is free again.
func TestStore_TryLock(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		s := openStore(t, url)
		ctx := context.Background()
		unlock, ok, err := s.TryLock(ctx, "source/a/search")
		require.NoError(t, err)
		require.True(t, ok)
		_, ok, err = s.TryLock(ctx, "source/a/search")
		require.NoError(t, err)
		require.False(t, ok, "held")
		other, ok, err := s.TryLock(ctx, "source/b/search")
		require.NoError(t, err)
		require.True(t, ok, "another name")
		other()
		unlock()
		unlock()
		again, ok, err := s.TryLock(ctx, "source/a/search")
		require.NoError(t, err)
		require.True(t, ok, "released")
		again()
		require.NoError(t, s.StopQueue(ctx))
		require.NoError(t, s.Close())
	})
}

// On PostgreSQL a lock holds across replicas of one store, and does not
// reach a store in another schema of the same database.
func TestPostgres_TryLockAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	ctx := context.Background()
	a, b := openStore(t, url), openStore(t, url)
	unlock, ok, err := a.TryLock(ctx, "source/kodjin/search")
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = b.TryLock(ctx, "source/kodjin/search")
	require.NoError(t, err)
	require.False(t, ok, "held by the other replica")

	elsewhere := openStore(t, storetest.PostgresURL(t))
	other, ok, err := elsewhere.TryLock(ctx, "source/kodjin/search")
	require.NoError(t, err)
	require.True(t, ok, "another schema's mediator")
	other()

	unlock()
	again, ok, err := b.TryLock(ctx, "source/kodjin/search")
	require.NoError(t, err)
	require.True(t, ok, "released by the other replica")
	again()
	for _, s := range []storetype.Store{a, b, elsewhere} {
		require.NoError(t, s.StopQueue(ctx))
		require.NoError(t, s.Close())
	}
}
