package store_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store/storetest"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// claimLikeArgs is about the size of a claim job's arguments.
type claimLikeArgs struct {
	Code        string `json:"code"`
	Created     string `json:"created"`
	InsureeUUID string `json:"insuree_uuid"`
	UUID        string `json:"uuid"`
}

func (claimLikeArgs) Kind() string { return "bench" }

// BenchmarkSQLite_Enqueue measures the intake's store work: a receipt and a
// job per item, committed (synchronous=FULL) before Enqueue returns, from 64
// concurrent callers as the HTTP handlers make it.
func BenchmarkSQLite_Enqueue(b *testing.B) {
	ctx := context.Background()
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "mediator.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.StartQueue(ctx, &river.Config{}); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(32) // 64 callers on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			key := fmt.Sprintf("c1a10000-0000-4000-8000-%012d", i)
			args := claimLikeArgs{Code: "L" + key[24:], Created: "2025-06-30", InsureeUUID: "a11ce000-0000-4000-8000-000000000001", UUID: key}
			if _, err := s.Enqueue(ctx, "bench", key, args); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// claimBenchWorker does a claim job's store work: it reads the insuree's
// person (unknown: a new insuree each claim), records it, and records the
// delivery. River then records the job completed.
type claimBenchWorker struct {
	river.WorkerDefaults[claimLikeArgs]
	s      storetype.Store
	worked atomic.Int64
	all    chan struct{}
	n      int64
}

func (w *claimBenchWorker) Work(ctx context.Context, job *river.Job[claimLikeArgs]) error {
	if _, _, err := w.s.Person(ctx, job.Args.InsureeUUID); err != nil {
		return err
	}
	if err := w.s.SavePerson(ctx, job.Args.InsureeUUID, "p-"+job.Args.InsureeUUID); err != nil {
		return err
	}
	if err := w.s.MarkDelivered(ctx, "bench", job.Args.UUID, "r-"+job.Args.UUID); err != nil {
		return err
	}
	if w.worked.Add(1) == w.n {
		close(w.all)
	}
	return nil
}

// BenchmarkStore_Claim measures the store's whole cost of a claim, from
// intake to completion, as the mediator's default settings make it: 64
// concurrent intakes (Enqueue), the job fetched and worked by a real River
// client with the mediator's queue settings, its worker's person look-up,
// SavePerson and MarkDelivered, and River's completion, all committed before
// the run ends (StopQueue waits for the completions). It reports the process's
// CPU time per claim (user and system, every goroutine: a steadier figure
// than ns/op on a shared machine) and, on SQLite, the commits per claim.
// A PostgreSQL server's own CPU is not in the figure.
func BenchmarkStore_Claim(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) {
		commits := store.CountSQLiteCommits()
		benchClaims(b, func() string { return "sqlite://" + filepath.Join(b.TempDir(), "mediator.db") }, commits)
	})
	b.Run("PostgreSQL", func(b *testing.B) {
		benchClaims(b, func() string { return storetest.PostgresURL(b) }, nil)
	})
}

func benchClaims(b *testing.B, url func() string, commits func() int64) {
	ctx := context.Background()
	s, err := store.Open(ctx, url())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := &claimBenchWorker{s: s, all: make(chan struct{}), n: int64(b.N)}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	err = s.StartQueue(ctx, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4 * 64}},
		Workers:           workers,
		FetchCooldown:     time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	const senders = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	var c0 int64
	if commits != nil {
		c0 = commits()
	}
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range senders {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				key := fmt.Sprintf("c1a10000-0000-4000-8000-%012d", i)
				args := claimLikeArgs{Code: "L" + key[24:], Created: "2025-06-30", InsureeUUID: fmt.Sprintf("a11ce000-0000-4000-8000-%012d", i), UUID: key}
				if _, err := s.Enqueue(ctx, "bench", key, args); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	select {
	case <-w.all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d claims worked", w.worked.Load(), b.N)
	}
	if err := s.StopQueue(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/claim")
	if commits != nil {
		b.ReportMetric(float64(commits()-c0)/float64(b.N), "commits/claim")
	}
	// Every claim's job must have been completed, not left for later.
	jobs, err := s.ListJobs(ctx, storetype.JobFilter{States: []rivertype.JobState{rivertype.JobStateCompleted}, Limit: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	if want := min(b.N, 10_000); len(jobs) != want {
		b.Fatalf("%d jobs completed, want %d", len(jobs), want)
	}
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
