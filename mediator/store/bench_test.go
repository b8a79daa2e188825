package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/riverqueue/river"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
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
