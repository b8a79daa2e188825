package mediator_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

func catchupClaim(i int) string { return fmt.Sprintf("5e7d0c3a-0000-4000-8000-%012d", i) }

func TestCatchup_ClaimsCreatedWhileDownArriveOnce(t *testing.T) {
	t.Parallel()
	const n = 150 // two pages of 100
	b := setup(t, setupOpts{
		claimSubscriptions: false, // a 24.10 openIMIS: polling is the only way
		seed: func(oi *openimistest.Server) {
			for i := range n {
				oi.AddClaim(openimistest.ClaimResponseFixture(catchupClaim(i), fmt.Sprintf("C%d", i), openimistest.SeedPatientID),
					time.Now().Add(-time.Hour))
			}
			// Older than the first poll's look-back: left alone.
			oi.AddClaim(openimistest.ClaimResponseFixture(catchupClaim(999), "OLD", openimistest.SeedPatientID),
				time.Now().Add(-72*time.Hour))
		},
		edit: func(o *mediator.Options) { o.ClaimPollInterval = 200 * time.Millisecond },
	})
	for i := range n {
		b.waitDelivered(t, catchupClaim(i))
	}
	for i := range n {
		require.Len(t, b.reportsFor(catchupClaim(i)), 1)
	}
	require.Len(t, b.peopleFor(openimistest.SeedPatientID), 1)

	// A notification of a polled claim is a duplicate.
	resp := b.postClaim(t, openimistest.ClaimResponseFixture(catchupClaim(0), "C0", openimistest.SeedPatientID))
	require.Equal(t, http.StatusOK, resp.status)
	require.Contains(t, string(resp.body), `"duplicate"`)

	// A claim created later is found by a later poll, once.
	b.oi.AddClaim(openimistest.ClaimResponseFixture(catchupClaim(500), "NEW", openimistest.SeedPatientID), time.Now())
	b.waitDelivered(t, catchupClaim(500))
	require.Len(t, b.reportsFor(catchupClaim(500)), 1)
	require.Empty(t, b.reportsFor(catchupClaim(999)))

	// Every poll used the one filter openIMIS understands, in its format.
	polls := 0
	for _, r := range b.oi.Requests() {
		if r.Path == openimistest.FHIRPath+"ClaimResponse/" {
			polls++
			require.Regexp(t, `_lastUpdated=ge\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\d(&|$)`, r.RawQuery)
			require.Equal(t, 1, strings.Count(r.RawQuery, "_lastUpdated="))
		}
	}
	require.GreaterOrEqual(t, polls, 3)
}

func TestCatchup_RestartResumesFromWatermark(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		seed: func(oi *openimistest.Server) {
			oi.AddClaim(openimistest.ClaimResponseFixture(catchupClaim(1), "C1", openimistest.SeedPatientID), time.Now().Add(-time.Hour))
		},
		edit: func(o *mediator.Options) { o.ClaimPollInterval = 200 * time.Millisecond },
	})
	b.waitDelivered(t, catchupClaim(1))

	// Down for a while; a claim is created meanwhile; up again.
	b.stop(t)
	b.oi.AddClaim(openimistest.ClaimResponseFixture(catchupClaim(2), "C2", openimistest.SeedPatientID), time.Now())
	b.start(t)
	b.waitDelivered(t, catchupClaim(2))
	require.Len(t, b.reportsFor(catchupClaim(1)), 1)
	require.Len(t, b.reportsFor(catchupClaim(2)), 1)
}

func TestCatchup_OpenIMISDownThenUp(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		seed: func(oi *openimistest.Server) {
			oi.AddClaim(openimistest.ClaimResponseFixture(catchupClaim(7), "C7", openimistest.SeedPatientID), time.Now().Add(-time.Minute))
			oi.SetDown(http.StatusBadGateway)
		},
		edit: func(o *mediator.Options) { o.ClaimPollInterval = 200 * time.Millisecond },
	})
	// The poll meets openIMIS down: its login fails (the poll then waits
	// for the next login) or its request does.
	require.Eventually(t, func() bool {
		out := b.logs.String()
		return strings.Contains(out, "will retry") || strings.Contains(out, "openimis login failed")
	}, 15*time.Second, 10*time.Millisecond)
	b.oi.SetDown(0)
	b.waitDelivered(t, catchupClaim(7))
	require.Len(t, b.reportsFor(catchupClaim(7)), 1)
}

func TestCatchup_ResumesAnInterruptedPoll(t *testing.T) {
	t.Parallel()
	start := time.Now().Add(-time.Hour)
	b := setup(t, setupOpts{seed: func(oi *openimistest.Server) {
		for i := range 150 {
			oi.AddClaim(openimistest.ClaimResponseFixture(catchupClaim(i), fmt.Sprintf("C%d", i), openimistest.SeedPatientID),
				start.Add(time.Duration(i)*time.Millisecond))
		}
	}})
	// A poll was cut short after its first page of 100.
	started := time.Now().UTC()
	progress := fmt.Sprintf(`{"page":2,"since":%q,"started":%q}`,
		start.Add(-time.Minute).UTC().Format(time.RFC3339Nano), started.Format(time.RFC3339Nano))
	require.NoError(t, b.store.SetSetting(context.Background(), "catchup_progress", progress))

	b.opts.ClaimPollInterval = 200 * time.Millisecond
	b.restart(t)
	for i := 100; i < 150; i++ {
		b.waitDelivered(t, catchupClaim(i))
	}
	require.Eventually(t, func() bool {
		v, _, err := b.store.Setting(context.Background(), "catchup_watermark")
		require.NoError(t, err)
		return v == started.Format(time.RFC3339Nano)
	}, 15*time.Second, 10*time.Millisecond)
	// The progress is cleared right after the watermark is written.
	require.Eventually(t, func() bool {
		v, _, err := b.store.Setting(context.Background(), "catchup_progress")
		require.NoError(t, err)
		return v == ""
	}, 15*time.Second, 10*time.Millisecond, "the finished poll cleared its progress")
	// The first page was done before the interruption: not read again.
	for i := range 100 {
		require.Empty(t, b.reportsFor(catchupClaim(i)))
	}
}

// A poll that fails for good (here the openIMIS user may not read claims) is
// an error in the log at every poll, not a failed job kept for an operator:
// the next poll tries again, and failed polls would pile up one per period.
func TestCatchup_PermanentFailureIsNotKept(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{edit: func(o *mediator.Options) { o.ClaimPollInterval = 100 * time.Millisecond }})
	b.oi.AddUser("nopoll", "nopoll-pass", []int{openimistest.RightSubscriptionSearch, openimistest.RightSubscriptionCreate,
		openimistest.RightSubscriptionDelete, openimistest.RightInsureeRead, openimistest.RightFeedbackDeliver})
	b.opts.OpenIMIS = mustOpenIMIS(t, b.oi, "nopoll", "nopoll-pass")
	b.restart(t)
	require.Eventually(t, func() bool {
		return strings.Count(b.logs.String(), "periodic job failed; its next run tries again") >= 2
	}, 15*time.Second, 10*time.Millisecond, "two polls failed")
	require.Contains(t, b.logs.String(), "search claims since")
	jobs, err := b.store.ListJobs(t.Context(), storetype.JobFilter{States: []rivertype.JobState{rivertype.JobStateCancelled, rivertype.JobStateDiscarded}, Limit: 100})
	require.NoError(t, err)
	require.Empty(t, jobs)
	require.NotContains(t, b.logs.String(), "kept for an operator")
	require.Contains(t, b.scrape(t), `mediator_jobs_total{kind="claim_catchup",outcome="failed"}`)
}

// TestCatchup_ClaimDateFromClaim: openIMIS writes a ClaimResponse's created
// when it converts it, so a polled claim takes its date from
// GET Claim/<uuid>/ (docs/upstreams/openimis.md trap 21); a Claim the user
// may not read leaves the ClaimResponse's date, with a warning.
func TestCatchup_ClaimDateFromClaim(t *testing.T) {
	t.Parallel()
	claimed := time.Now().UTC().AddDate(0, 0, -10)
	const dated, forbidden = "da7ed000-0000-4000-8000-000000000001", "da7ed000-0000-4000-8000-000000000002"
	b := setup(t, setupOpts{
		seed: func(oi *openimistest.Server) {
			oi.AddClaim(openimistest.ClaimResponseFixture(dated, "D1", openimistest.SeedPatientID), claimed)
			oi.AddClaim(openimistest.ClaimResponseFixture(forbidden, "D2", openimistest.SeedPatientID), claimed)
			oi.FailNextPath(openimistest.FHIRPath+"Claim/"+forbidden+"/", 1, http.StatusForbidden)
		},
		edit: func(o *mediator.Options) {
			o.ClaimPollInterval = time.Hour
			o.CatchupLookback = 30 * 24 * time.Hour
		},
	})
	b.waitDelivered(t, dated)
	b.waitDelivered(t, forbidden)
	opDay := func(date string) map[string]any {
		r, err := mapping.OPReport(mapping.Claim{Created: date, UUID: dated, Code: "D1", InsureeUUID: openimistest.SeedPatientID}, "", "OP")
		require.NoError(t, err)
		return map[string]any{"op_year": r.Fields["op_year"], "op_month": r.Fields["op_month"], "op_day": r.Fields["op_day"]}
	}
	fields := func(claimUUID string) map[string]any {
		reports := b.reportsFor(claimUUID)
		require.Len(t, reports, 1)
		f := reports[0].Fields
		return map[string]any{"op_year": f["op_year"], "op_month": f["op_month"], "op_day": f["op_day"]}
	}
	require.Equal(t, opDay(claimed.Format(time.DateOnly)), fields(dated), "the claim's date, not the poll's")
	require.Equal(t, opDay(time.Now().UTC().Format(time.DateOnly)), fields(forbidden), "the ClaimResponse's date when the Claim is not readable")
	b.waitLog(t, "may not read the claim; its report takes the ClaimResponse's date")
}
