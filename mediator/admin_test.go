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

	"github.com/cht-openimis/mediator/mediator"
)

func TestJobs_ParkedClaimListedShownAndRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	// The CHT refuses the person once with a 400: a permanent error.
	b.cht.FailNextPath("/api/v1/people", 1, http.StatusBadRequest)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	require.Eventually(t, func() bool { return strings.Contains(b.logs.String(), "job failed permanently") },
		15*time.Second, 10*time.Millisecond)

	var out bytes.Buffer
	require.Eventually(t, func() bool { // River records the outcome a moment later
		out.Reset()
		require.NoError(t, mediator.ListJobs(ctx, b.store, &out, "failed", 10))
		return strings.Contains(out.String(), "claim "+fixtureClaimUUID)
	}, 15*time.Second, 10*time.Millisecond)
	require.Contains(t, out.String(), "failed (permanent error)")
	require.Contains(t, out.String(), "400")

	jobs, err := b.store.ListJobs(ctx, []rivertype.JobState{rivertype.JobStateCancelled}, 10)
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

func TestJobs_RetryAllFailedRetriesEachOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	// The CHT keeps refusing: a retried job fails again at once.
	b.cht.FailNextPath("/api/v1/people", 1000, http.StatusBadRequest)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	require.Eventually(t, func() bool {
		jobs, err := b.store.ListJobs(ctx, []rivertype.JobState{rivertype.JobStateCancelled}, 10)
		require.NoError(t, err)
		return len(jobs) == 1
	}, 15*time.Second, 10*time.Millisecond)
	for range 3 {
		var out bytes.Buffer
		require.NoError(t, mediator.RetryFailedJobs(ctx, b.store, &out))
		require.Equal(t, "1 failed jobs made available again\n", out.String())
		require.Eventually(t, func() bool {
			jobs, err := b.store.ListJobs(ctx, []rivertype.JobState{rivertype.JobStateCancelled}, 10)
			require.NoError(t, err)
			return len(jobs) == 1
		}, 15*time.Second, 10*time.Millisecond, "it failed again")
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
	require.Eventually(t, func() bool {
		jobs, err := b.store.ListJobs(ctx, []rivertype.JobState{rivertype.JobStateCancelled}, 10)
		require.NoError(t, err)
		return len(jobs) == 1
	}, 15*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, other, fixtureInsureeUUID, "2025-06-30")).status)
	var jobs []*rivertype.JobRow
	require.Eventually(t, func() bool {
		var err error
		jobs, err = b.store.ListJobs(ctx, []rivertype.JobState{rivertype.JobStateCancelled}, 10)
		require.NoError(t, err)
		return len(jobs) == 2
	}, 15*time.Second, 10*time.Millisecond)

	// The newest job cannot be retried: the other one still is.
	var out bytes.Buffer
	err := mediator.RetryFailedJobs(ctx, failingRetries{Store: b.store, id: jobs[0].ID}, &out)
	require.ErrorContains(t, err, fmt.Sprintf("retry job %d: UNIQUE constraint failed", jobs[0].ID))
	require.Equal(t, "1 failed jobs made available again\n", out.String())
	b.waitDelivered(t, fixtureClaimUUID)
}
