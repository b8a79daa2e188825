package store

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// jobClient is what both stores' River clients offer operators; the
// methods do not depend on the driver's transaction type.
type jobClient interface {
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
}

// listJobs lists up to limit jobs in the given states, newest first.
func listJobs(ctx context.Context, c jobClient, states []rivertype.JobState, limit int) ([]*rivertype.JobRow, error) {
	params := river.NewJobListParams().First(limit).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if len(states) > 0 {
		params = params.States(states...)
	}
	res, err := c.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return res.Jobs, nil
}
