package mediator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

func TestJobs_ParkedClaimListedShownAndRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	// The CHT refuses the person once with a 400: a permanent error.
	b.cht.FailNextPath("/api/v1/people", 1, http.StatusBadRequest)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitLog(t, "job failed permanently")

	var out bytes.Buffer
	require.Eventually(t, func() bool { // River records the outcome a moment later
		out.Reset()
		require.NoError(t, mediator.ListJobs(ctx, b.store, &out, "failed", 10))
		return strings.Contains(out.String(), "claim "+fixtureClaimUUID)
	}, 15*time.Second, 10*time.Millisecond)
	require.Contains(t, out.String(), "failed (permanent error)")
	require.Contains(t, out.String(), "400")

	jobs, err := b.store.ListJobs(ctx, mediator.JobFilter{States: []rivertype.JobState{rivertype.JobStateCancelled}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	out.Reset()
	require.NoError(t, mediator.ShowJob(ctx, b.store, &out, jobs[0].ID))
	require.Contains(t, out.String(), "attempts:  1 of")
	require.Contains(t, out.String(), "cht POST /api/v1/people: 400")
	require.Contains(t, out.String(), `"insuree_uuid": "`+fixtureInsureeUUID+`"`)
	require.NotContains(t, out.String(), mediatorPass)

	require.Error(t, mediator.ShowJob(ctx, b.store, &out, 999999))
	require.ErrorContains(t, mediator.ListJobs(ctx, b.store, &out, "bogus", 10), "unknown state")

	out.Reset()
	require.NoError(t, mediator.RetryFailedJobs(ctx, b.store, &out))
	require.Equal(t, "1 failed jobs made available again\n", out.String())
	b.waitDelivered(t, fixtureClaimUUID)
	require.Len(t, b.reportsFor(fixtureClaimUUID), 1)
	require.Len(t, b.peopleFor(fixtureInsureeUUID), 1)

	out.Reset()
	require.NoError(t, mediator.ListJobs(ctx, b.store, &out, "failed", 10))
	require.Equal(t, "no jobs\n", out.String())
}

// waitCancelled waits until n jobs failed permanently and returns them,
// newest first.
func (b *testBundle) waitCancelled(t *testing.T, n int) []*rivertype.JobRow {
	t.Helper()
	var jobs []*rivertype.JobRow
	require.Eventually(t, func() bool {
		var err error
		jobs, err = b.store.ListJobs(context.Background(), mediator.JobFilter{States: []rivertype.JobState{rivertype.JobStateCancelled}, Limit: 10})
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
	for range 3 {
		var out bytes.Buffer
		require.NoError(t, mediator.RetryFailedJobs(ctx, b.store, &out))
		require.Equal(t, "1 failed jobs made available again\n", out.String())
		b.waitCancelled(t, 1) // it failed again
	}
	require.Empty(t, b.reportsFor(fixtureClaimUUID))
}

// failingRetries is a store whose RetryJob fails for one job.
type failingRetries struct {
	mediator.Store
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
	var out bytes.Buffer
	err := mediator.RetryFailedJobs(ctx, failingRetries{Store: b.store, id: jobs[0].ID}, &out)
	require.ErrorContains(t, err, fmt.Sprintf("retry job %d: UNIQUE constraint failed", jobs[0].ID))
	require.Equal(t, "1 failed jobs made available again\n", out.String())
	b.waitDelivered(t, fixtureClaimUUID)
}

// pagedStore holds failed claim jobs 1..n; retrying those in fail errs.
type pagedStore struct {
	mediator.Store
	n       int64
	fail    map[int64]bool
	retried map[int64]int
}

func (s *pagedStore) ListJobs(_ context.Context, f mediator.JobFilter) ([]*rivertype.JobRow, error) {
	var out []*rivertype.JobRow
	for id := s.n; id >= 1 && len(out) < f.Limit; id-- {
		if f.Before == 0 || id < f.Before {
			out = append(out, &rivertype.JobRow{ID: id, Kind: "claim", State: rivertype.JobStateCancelled})
		}
	}
	return out, nil
}

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
	var out bytes.Buffer
	err := mediator.RetryFailedJobs(context.Background(), st, &out)
	require.ErrorContains(t, err, "retry job 250: refused")
	require.ErrorContains(t, err, "retry job 151: refused")
	require.Equal(t, "150 failed jobs made available again\n", out.String())
	require.Len(t, st.retried, 250)
	for id, n := range st.retried {
		require.Equal(t, 1, n, "job %d", id)
	}
}
