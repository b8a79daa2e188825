package mediator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// readyAnswer is what a test reads of GET /ready.
type readyAnswer struct {
	status int
	Status string
	Paused map[string]struct {
		Until  time.Time
		Reason string
	}
	Reasons []string
}

func (b *testBundle) readyState(t *testing.T) readyAnswer {
	t.Helper()
	resp, err := b.srv.Client().Get(b.srv.URL + "/ready")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var r readyAnswer
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	r.status = resp.StatusCode
	return r
}

// A proxy in front of the CHT answers 429 with Retry-After: 999999999. The
// pause is bounded at 5 minutes, the job waits without using an attempt,
// the log says it was a 429, and /ready and /metrics show the pause.
func TestHostile_CHTRetryAfterIsBoundedAndShown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	b.cht.SetFaultHeader(http.StatusTooManyRequests, "Retry-After", "999999999")
	b.cht.FailNextPath("/api/v2/records", 1, http.StatusTooManyRequests)
	start := time.Now()
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)

	var r readyAnswer
	require.Eventually(t, func() bool {
		r = b.readyState(t)
		_, ok := r.Paused["cht"]
		return ok
	}, 15*time.Second, 10*time.Millisecond, "/ready shows the CHT paused")
	require.Equal(t, http.StatusOK, r.status, "a pause ends by itself: still ready")
	require.WithinRange(t, r.Paused["cht"].Until, start, time.Now().Add(5*time.Minute+time.Second))
	require.Contains(t, r.Paused["cht"].Reason, "429 Too Many Requests")
	require.NotContains(t, r.Paused["cht"].Reason, "refused login")

	m := regexp.MustCompile(`mediator_upstream_paused_seconds\{system="cht"\} (\S+)`).FindStringSubmatch(b.scrape(t))
	require.NotNil(t, m, "the pause is a metric")
	left, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.Greater(t, left, 200.0)
	require.LessOrEqual(t, left, 300.0)
	require.Contains(t, b.scrape(t), `mediator_upstream_paused_seconds{system="openimis"} 0`)

	js, err := mediator.OpenJobs(ctx, b.store)
	require.NoError(t, err)
	var job mediator.Job
	require.Eventually(t, func() bool {
		list, err := js.List(ctx, "scheduled", 10)
		require.NoError(t, err)
		if len(list) != 1 {
			return false
		}
		job = list[0]
		return true
	}, 15*time.Second, 10*time.Millisecond, "the job waits, scheduled")
	require.Empty(t, job.Errors, "waiting uses no attempt")
	require.WithinRange(t, job.NextTry, start.Add(4*time.Minute), time.Now().Add(5*time.Minute+time.Second))
	require.Len(t, b.reportsFor(fixtureClaimUUID), 0)
}
