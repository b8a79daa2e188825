package mediator_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
)

func (b *testBundle) scrape(t *testing.T) string {
	t.Helper()
	resp, err := b.srv.Client().Get(b.srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

func TestMetrics_AfterTraffic(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true, edit: func(o *mediator.Options) {
		o.ClaimPollInterval = 200 * time.Millisecond
	}})
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	require.Equal(t, http.StatusBadRequest, b.postClaim(t, []byte(`{}`)).status)
	b.waitDelivered(t, fixtureClaimUUID)
	b.cht.SetDown(http.StatusServiceUnavailable)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, "0b3f9c52-6a0e-4b8e-9f63-3c2d5d0f1a77", fixtureInsureeUUID, "2025-06-30")).status)

	var out string
	require.Eventually(t, func() bool {
		out = b.scrape(t)
		return strings.Contains(out, `mediator_jobs_total{kind="claim",outcome="retry"}`) &&
			strings.Contains(out, `mediator_openimis_subscription_state{state="active"} 1`) &&
			!strings.Contains(out, "mediator_catchup_last_success_timestamp_seconds 0\n")
	}, 15*time.Second, 20*time.Millisecond)
	for _, series := range []string{
		`mediator_http_requests_total{route="/mediator/claim-response",status="200"} 2`,
		`mediator_http_requests_total{route="/mediator/claim-response",status="400"} 1`,
		`mediator_jobs_total{kind="claim",outcome="done"} 1`,
		`mediator_job_duration_seconds_bucket{kind="claim"`,
		`mediator_queue_depth{kind="claim"} 1`,
		`mediator_queue_oldest_job_age_seconds `,
		`mediator_upstream_request_duration_seconds_bucket{operation="POST /api/v2/records",status="200",system="cht"`,
		`mediator_upstream_request_duration_seconds_bucket{operation="GET /api/api_fhir_r4/Patient/:id/",status="200",system="openimis"`,
		`mediator_openimis_logins_total{outcome="ok"} 1`,
		`mediator_catchup_interval_seconds 0.2`,
		`mediator_openhim_registered 0`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		require.Contains(t, out, series)
	}
}

// unreachableStats is a store whose queue query fails while down is set, as
// an unreachable database's would.
type unreachableStats struct {
	storetype.Store
	down *atomic.Bool
}

func (s unreachableStats) QueueStats(ctx context.Context) (map[string]storetype.QueueStat, error) {
	if s.down.Load() {
		return nil, errors.New("store: queue stats: connection refused")
	}
	return s.Store.QueueStats(ctx)
}

// gaugeValue returns the value of the sample whose line starts with series
// (name and labels) in a scrape, and whether there is one.
func gaugeValue(out, series string) (float64, bool) {
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// The series the alerting rules (deploy/prometheus) need: jobs waiting for
// an operator, whether the store answered, the subscription's end, the poll
// period, the OpenHIM link and the limits' minimum.
func TestMetrics_OperatorSeries(t *testing.T) {
	t.Parallel()
	down := &atomic.Bool{}
	b := setup(t, setupOpts{
		claimSubscriptions: true,
		openhim:            &openhimtest.Options{},
		wrapStore:          func(st storetype.Store) storetype.Store { return unreachableStats{Store: st, down: down} },
		edit:               func(o *mediator.Options) { o.ClaimPollInterval = time.Hour },
	})
	// Until OpenHIM's runtime configuration (polling off) applies, the
	// configured period.
	out := b.scrape(t)
	require.Regexp(t, `\nmediator_catchup_interval_seconds (3600|0)\n`, out)
	for _, series := range []string{
		`mediator_failed_jobs{kind="claim"} 0`, // present before any job of the kind
		`mediator_failed_jobs{kind="feedback"} 0`,
		`mediator_queue_depth{kind="feedback"} 0`,
		`mediator_store_up 1`,
		`mediator_openhim_heartbeat_failing 0`,
		`mediator_upstream_concurrency_limit_min{system="cht"} 1`,
		`mediator_upstream_concurrency_limit_min{system="openimis"} 1`,
	} {
		require.Contains(t, out, series+"\n")
	}

	// The CHT refuses the person with a 400: the claim job waits, failed,
	// for an operator, outside the queue's depth.
	b.cht.FailNextPath("/api/v1/people", 1, http.StatusBadRequest)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	require.Eventually(t, func() bool {
		out = b.scrape(t)
		return strings.Contains(out, `mediator_failed_jobs{kind="claim"} 1`+"\n") &&
			strings.Contains(out, `mediator_openimis_subscription_state{state="active"} 1`+"\n") &&
			strings.Contains(out, `mediator_openhim_state{state="registered"} 1`+"\n")
	}, 15*time.Second, 20*time.Millisecond, "%s", out)
	require.Contains(t, out, `mediator_queue_depth{kind="claim"} 0`+"\n")
	// Registered: OpenHIM's runtime configuration turned polling off.
	require.Eventually(t, func() bool {
		return strings.Contains(b.scrape(t), "mediator_catchup_interval_seconds 0\n")
	}, 15*time.Second, 20*time.Millisecond)
	// A state set: the other states are present, at 0.
	require.Contains(t, out, `mediator_openimis_subscription_state{state="failing"} 0`+"\n")
	require.Contains(t, out, `mediator_openhim_state{state="registering"} 0`+"\n")
	require.Contains(t, out, `mediator_openhim_state{state="disabled"} 0`+"\n")
	end, ok := gaugeValue(out, "mediator_openimis_subscription_end_timestamp_seconds")
	require.True(t, ok, "%s", out)
	require.WithinDuration(t, b.oi.Subscriptions()[0].End, time.Unix(0, int64(end*1e9)), time.Millisecond,
		"the end of the subscription openIMIS holds")

	// The core stops answering: the heartbeat fails.
	b.him.SetDown(http.StatusServiceUnavailable)
	require.Eventually(t, func() bool {
		return strings.Contains(b.scrape(t), "mediator_openhim_heartbeat_failing 1\n")
	}, 15*time.Second, 20*time.Millisecond)
	b.him.SetDown(0)
	require.Eventually(t, func() bool {
		return strings.Contains(b.scrape(t), "mediator_openhim_heartbeat_failing 0\n")
	}, 15*time.Second, 20*time.Millisecond)

	// The store does not answer: its series say so, the others remain.
	down.Store(true)
	out = b.scrape(t)
	require.Contains(t, out, "mediator_store_up 0\n")
	require.NotContains(t, out, "mediator_queue_depth")
	require.Contains(t, out, `mediator_openimis_subscription_state{state="active"} 1`+"\n")
}
