package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// riverQueue holds a store's River client, whatever its driver's
// transaction type, and implements the queue parts of storetype.Store that
// do not depend on the database.
type riverQueue[TTx any] struct {
	mu     sync.Mutex
	client *river.Client[TTx]
}

// setClient records the client; it reports whether it is the first.
func (q *riverQueue[TTx]) setClient(c *river.Client[TTx]) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	first := q.client == nil
	q.client = c
	return first
}

func (q *riverQueue[TTx]) queue() *river.Client[TTx] {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.client
}

// StopQueue implements storetype.Store.
func (q *riverQueue[TTx]) StopQueue(ctx context.Context) error {
	client := q.queue()
	if client == nil {
		return nil
	}
	if err := client.Stop(ctx); err != nil {
		// The deadline passed with jobs still running: cancel them. They run
		// again after a restart (SQLite) or a rescue (PostgreSQL).
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return errors.Join(err, client.StopAndCancel(cctx))
	}
	return nil
}

// Insert implements storetype.Store.
func (q *riverQueue[TTx]) Insert(ctx context.Context, args river.JobArgs) error {
	client := q.queue()
	if client == nil {
		return errNoQueue
	}
	if _, err := client.Insert(ctx, args, nil); err != nil {
		return fmt.Errorf("store: insert %s job: %w", args.Kind(), err)
	}
	return nil
}

// ListJobs implements storetype.Store.
func (q *riverQueue[TTx]) ListJobs(ctx context.Context, f storetype.JobFilter) ([]*rivertype.JobRow, error) {
	client := q.queue()
	if client == nil {
		return nil, errNoQueue
	}
	params := river.NewJobListParams().First(f.Limit).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if len(f.States) > 0 {
		params = params.States(f.States...)
	}
	if len(f.Kinds) > 0 {
		params = params.Kinds(f.Kinds...)
	}
	if f.Before != 0 {
		params = params.After(river.JobListCursorFromJob(&rivertype.JobRow{ID: f.Before}))
	}
	res, err := client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return res.Jobs, nil
}

// GetJob implements storetype.Store.
func (q *riverQueue[TTx]) GetJob(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	client := q.queue()
	if client == nil {
		return nil, errNoQueue
	}
	return client.JobGet(ctx, id)
}

// RetryJob implements storetype.Store.
func (q *riverQueue[TTx]) RetryJob(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	client := q.queue()
	if client == nil {
		return nil, errNoQueue
	}
	return client.JobRetry(ctx, id)
}
