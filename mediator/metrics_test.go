package mediator_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
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
		`mediator_openhim_registered 0`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		require.Contains(t, out, series)
	}
}
