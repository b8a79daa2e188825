package mediator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

func TestJobs_ParkedClaimListedShownAndRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	// The CHT refuses the person once with a 400: a permanent error.
	b.cht.FailNextPath("/api/v1/people", 1, http.StatusBadRequest)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitLog(t, "job failed permanently")

	js, err := mediator.OpenJobs(ctx, b.adminStore(t))
	require.NoError(t, err)
	var listed []mediator.Job
	require.Eventually(t, func() bool { // River records the outcome a moment later
		listed, err = js.List(ctx, "failed", 10)
		require.NoError(t, err)
		return len(listed) == 1
	}, 15*time.Second, 10*time.Millisecond)
	require.Equal(t, "claim "+fixtureClaimUUID, listed[0].Subject)
	require.Equal(t, "failed (permanent error)", listed[0].State)
	require.Contains(t, listed[0].LastError(), "400")

	j, err := js.Get(ctx, listed[0].ID)
	require.NoError(t, err)
	require.Equal(t, 1, j.Attempt)
	require.Equal(t, mediator.MaxAttempts, j.MaxAttempts)
	require.False(t, j.FinishedAt.IsZero())
	require.Len(t, j.Errors, 1)
	require.Contains(t, j.Errors[0].Error, "cht POST /api/v1/people: 400")
	var payload struct {
		Claim struct {
			InsureeUUID string `json:"insuree_uuid"`
		} `json:"claim"`
	}
	require.NoError(t, json.Unmarshal(j.Payload, &payload))
	require.Equal(t, fixtureInsureeUUID, payload.Claim.InsureeUUID)
	require.NotContains(t, string(j.Payload), mediatorPass)

	_, err = js.Get(ctx, 999999)
	require.ErrorContains(t, err, "no job 999999")
	_, err = js.List(ctx, "bogus", 10)
	require.ErrorContains(t, err, "unknown state")

	n, err := js.RetryFailed(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	b.waitDelivered(t, fixtureClaimUUID)
	require.Len(t, b.reportsFor(fixtureClaimUUID), 1)
	require.Len(t, b.peopleFor(fixtureInsureeUUID), 1)

	listed, err = js.List(ctx, "failed", 10)
	require.NoError(t, err)
	require.Empty(t, listed)
}

// adminStore opens the mediator's store a second time, as the operator's
// job commands do beside a running server.
func (b *testBundle) adminStore(t *testing.T) storetype.Store {
	t.Helper()
	st, err := store.OpenExisting(context.Background(), b.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = st.StopQueue(context.Background())
		_ = st.Close()
	})
	return st
}

// waitCancelled waits until n jobs failed permanently and returns them,
// newest first.
func (b *testBundle) waitCancelled(t *testing.T, n int) []*rivertype.JobRow {
	t.Helper()
	var jobs []*rivertype.JobRow
	require.Eventually(t, func() bool {
		var err error
		jobs, err = b.store.ListJobs(context.Background(), storetype.JobFilter{States: []rivertype.JobState{rivertype.JobStateCancelled}, Limit: 10})
		require.NoError(t, err)
		return len(jobs) == n
	}, 15*time.Second, 10*time.Millisecond)
	return jobs
}

func TestJobs_RetryAllFailedRetriesEachOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	// The CHT keeps refusing: a retried job fails again at once.
	b.cht.FailNextPath("/api/v1/people", 1000, http.StatusBadRequest)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitCancelled(t, 1)
	js, err := mediator.OpenJobs(ctx, b.adminStore(t))
	require.NoError(t, err)
	for range 3 {
		n, err := js.RetryFailed(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		b.waitCancelled(t, 1) // it failed again
	}
	require.Empty(t, b.reportsFor(fixtureClaimUUID))
}

// failingRetries is a store whose RetryJob fails for one job.
type failingRetries struct {
	storetype.Store
	id int64
}

func (s failingRetries) RetryJob(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	if id == s.id {
		return nil, errors.New("UNIQUE constraint failed")
	}
	return s.Store.RetryJob(ctx, id)
}

func TestJobs_RetryAllFailedGoesOnPastAnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	b.cht.FailNextPath("/api/v1/people", 2, http.StatusBadRequest)
	const other = "0b3f9c52-6a0e-4b8e-9f63-3c2d5d0f1a77"
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitCancelled(t, 1)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, other, fixtureInsureeUUID, "2025-06-30")).status)
	jobs := b.waitCancelled(t, 2)

	// The newest job cannot be retried: the other one still is.
	js, err := mediator.OpenJobs(ctx, failingRetries{Store: b.adminStore(t), id: jobs[0].ID})
	require.NoError(t, err)
	n, err := js.RetryFailed(ctx)
	require.ErrorContains(t, err, fmt.Sprintf("retry job %d: UNIQUE constraint failed", jobs[0].ID))
	require.Equal(t, 1, n)
	b.waitDelivered(t, fixtureClaimUUID)
}

// pagedStore holds failed claim jobs 1..n; retrying those in fail errs.
// Its queue starts without a database.
type pagedStore struct {
	storetype.Store
	n       int64
	fail    map[int64]bool
	retried map[int64]int
}

func (s *pagedStore) ListJobs(_ context.Context, f storetype.JobFilter) ([]*rivertype.JobRow, error) {
	var out []*rivertype.JobRow
	for id := s.n; id >= 1 && len(out) < f.Limit; id-- {
		if f.Before == 0 || id < f.Before {
			out = append(out, &rivertype.JobRow{ID: id, Kind: "claim", State: rivertype.JobStateCancelled})
		}
	}
	return out, nil
}

func (s *pagedStore) StartQueue(context.Context, *river.Config) error { return nil }

func (s *pagedStore) RetryJob(_ context.Context, id int64) (*rivertype.JobRow, error) {
	s.retried[id]++
	if s.fail[id] {
		return nil, errors.New("refused")
	}
	return &rivertype.JobRow{ID: id}, nil
}

// Every failed job is tried once, page after page, even when a whole page
// cannot be retried (failed jobs stay failed, newest first).
func TestJobs_RetryAllFailedPagesThroughEveryJob(t *testing.T) {
	t.Parallel()
	st := &pagedStore{n: 250, fail: map[int64]bool{}, retried: map[int64]int{}}
	for id := int64(151); id <= 250; id++ {
		st.fail[id] = true
	}
	js, err := mediator.OpenJobs(context.Background(), st)
	require.NoError(t, err)
	n, err := js.RetryFailed(context.Background())
	require.ErrorContains(t, err, "retry job 250: refused")
	require.ErrorContains(t, err, "retry job 151: refused")
	require.Equal(t, 150, n)
	require.Len(t, st.retried, 250)
	for id, n := range st.retried {
		require.Equal(t, 1, n, "job %d", id)
	}
}
