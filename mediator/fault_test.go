package mediator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// postClaims posts n claims of new insurees (known to openIMIS) and returns
// their UUIDs.
func (b *testBundle) postClaims(t *testing.T, prefix string, n int) []string {
	t.Helper()
	var claims []string
	for i := range n {
		insuree := fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, i%5)
		b.oi.AddPatient(insuree, openimistest.PatientFixture(insuree, fmt.Sprintf("%d", 700+i%5)))
		claim := fmt.Sprintf("%s-1111-4111-8111-%012d", prefix, i)
		claims = append(claims, claim)
		resp := b.postClaim(t, claimBody(t, claim, insuree, "2025-06-30"))
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	}
	return claims
}

// requireExactlyOnce waits for every claim and checks one report each and
// one person per insuree.
func (b *testBundle) requireExactlyOnce(t *testing.T, claims []string) {
	t.Helper()
	for _, c := range claims {
		b.waitDelivered(t, c)
	}
	for _, c := range claims {
		require.Len(t, b.reportsFor(c), 1, "claim %s", c)
	}
	perInsuree := map[any]int{}
	for _, p := range b.cht.People() {
		perInsuree[p.Doc["openimis_id"]]++
	}
	for id, n := range perInsuree {
		require.Equal(t, 1, n, "insuree %v", id)
	}
}

func TestFault_BothUpstreamsFlapping(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// Down 30 ms, up 30 ms, in turns, with a different error each time.
		// No 429 from the CHT here: the CHT counts it as a failed login and
		// locks the user out (see the cht client's cool-down test).
		statuses := []int{http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusInternalServerError, http.StatusTooManyRequests}
		for i := 0; ; i++ {
			if i%2 == 0 {
				b.cht.SetDown(statuses[(i/2)%3])
				b.oi.SetDown(statuses[(i/2+1)%len(statuses)])
			} else {
				b.cht.SetDown(0)
				b.oi.SetDown(0)
				if i%8 == 1 {
					b.cht.DropNext(1) // stored, answer lost
				}
			}
			select {
			case <-stop:
				b.cht.SetDown(0)
				b.oi.SetDown(0)
				return
			case <-time.After(30 * time.Millisecond):
			}
		}
	})
	claims := b.postClaims(t, "f1a9c0de", 40)
	time.Sleep(500 * time.Millisecond) // let the faults bite the workers
	close(stop)
	wg.Wait()
	b.requireExactlyOnce(t, claims)
}

func TestWorkers_BoundRequestsToUpstreams(t *testing.T) {
	t.Parallel()
	counter := &concurrencyCounter{base: http.DefaultTransport}
	b := setup(t, setupOpts{chtTransport: counter, edit: func(o *mediator.Options) { o.Workers = 3 }})
	b.cht.SetLatency(30 * time.Millisecond)
	claims := b.postClaims(t, "3f0e7a11", 24)
	b.requireExactlyOnce(t, claims)
	// The queue runs more jobs than WORKERS, but only WORKERS of them talk
	// to the upstreams at once; and they do run side by side.
	require.Equal(t, int64(3), counter.peak.Load())
}

func TestWorkers_WaitingForASlotUsesNoAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{edit: func(o *mediator.Options) {
		o.Workers = 1
		o.UpstreamTimeout = 200 * time.Millisecond
	}})
	// The one slot is busy with requests that time out, longer than the
	// others may wait for it.
	b.cht.SetLatency(time.Second)
	claims := b.postClaims(t, "5a0f1a11", 6)
	time.Sleep(1500 * time.Millisecond)
	b.cht.SetLatency(0)
	b.requireExactlyOnce(t, claims)

	done, snoozes := b.completedClaimJobs(t, len(claims))
	for _, j := range done {
		// Every failed attempt is a request that failed, none a wait for a
		// slot.
		require.Len(t, j.Errors, j.Attempt-1)
		for _, e := range j.Errors {
			require.Contains(t, e.Error, "cht ", "job %d attempt %d", j.ID, e.Attempt)
		}
	}
	require.NotZero(t, slices.Max(snoozes), "some jobs waited longer than an upstream timeout")
}

// concurrencyCounter records the most requests it carried at once.
type concurrencyCounter struct {
	base           http.RoundTripper
	inFlight, peak atomic.Int64
}

func (c *concurrencyCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	return c.base.RoundTrip(r)
}

func TestFault_SlowCHTBeyondTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{edit: func(o *mediator.Options) { o.UpstreamTimeout = 300 * time.Millisecond }})
	// The CHT stores each document, then answers too late: the job's
	// timeout (6 × UPSTREAM_TIMEOUT) cuts the requests of a job short, and
	// the CHT's concurrency limit shrinks to one request at a time.
	b.cht.SetLatency(time.Second)
	claims := b.postClaims(t, "51aa0c7d", 5)
	require.Eventually(t, func() bool { return len(b.cht.Reports()) >= 5 }, 2*time.Minute, 10*time.Millisecond)
	require.Equal(t, 1, b.opts.UpstreamLimits["cht"].Limit(), "every request timed out")
	b.cht.SetLatency(0)
	b.requireExactlyOnce(t, claims)
}

func TestFault_SlowOpenIMISBeyondTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{edit: func(o *mediator.Options) { o.UpstreamTimeout = 300 * time.Millisecond }})
	// The client's own timeout, as the server sets it from UPSTREAM_TIMEOUT.
	b.opts.OpenIMIS.SetTimeout(300 * time.Millisecond)
	b.oi.SetLatency(time.Second)
	claims := b.postClaims(t, "5100e1a1", 3)
	time.Sleep(time.Second) // every Patient read times out meanwhile
	require.Empty(t, b.cht.Reports())
	b.oi.SetLatency(0)
	b.requireExactlyOnce(t, claims)
}

func TestFault_OpenIMISRateLimitPutsJobsBack(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	require.Eventually(t, func() bool { return b.oi.Logins() > 0 }, 10*time.Second, 10*time.Millisecond)
	b.oi.SetDown(http.StatusTooManyRequests)
	claims := b.postClaims(t, "4290a1e1", 5)
	require.Eventually(t, func() bool { return b.patientReads() > 0 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	b.oi.SetDown(0)
	b.requireExactlyOnce(t, claims)

	done, snoozes := b.completedClaimJobs(t, len(claims))
	for _, j := range done {
		require.Empty(t, j.Errors, "a 429 uses no attempt: the job waits and tries again")
	}
	require.NotZero(t, slices.Max(snoozes), "jobs were put back while openIMIS limited the rate")
}

// completedClaimJobs waits until River has recorded n claim jobs as
// completed (its completer runs after the delivery record) and returns
// them with how often each was snoozed.
func (b *testBundle) completedClaimJobs(t *testing.T, n int) ([]*rivertype.JobRow, []int) {
	t.Helper()
	var done []*rivertype.JobRow
	require.Eventually(t, func() bool {
		jobs, err := b.store.ListJobs(t.Context(), storetype.JobFilter{States: []rivertype.JobState{rivertype.JobStateCompleted}, Limit: 100})
		require.NoError(t, err)
		done = slices.DeleteFunc(jobs, func(j *rivertype.JobRow) bool { return j.Kind != "claim" })
		return len(done) == n
	}, 10*time.Second, 10*time.Millisecond)
	snoozes := make([]int, len(done))
	for i, j := range done {
		var meta struct {
			Snoozes int `json:"snoozes"`
		}
		require.NoError(t, json.Unmarshal(j.Metadata, &meta))
		snoozes[i] = meta.Snoozes
	}
	return done, snoozes
}

// patientReads counts the insuree reads openIMIS received.
func (b *testBundle) patientReads() int {
	n := 0
	for _, r := range b.oi.Requests() {
		if strings.HasPrefix(r.Path, openimistest.FHIRPath+"Patient/") {
			n++
		}
	}
	return n
}

func TestFault_WrongOpenIMISPasswordPutsJobsBack(t *testing.T) {
	t.Parallel()
	// The openIMIS password changed before the mediator started.
	b := setup(t, setupOpts{seed: func(oi *openimistest.Server) { oi.AddUser(imisUser, "rotated-password", nil) }})
	claims := b.postClaims(t, "b0ff0a11", 3)
	require.Eventually(t, func() bool {
		n := 0
		for _, r := range b.oi.Requests() {
			if strings.HasSuffix(r.Path, "/login/") {
				n++
			}
		}
		return n >= 1
	}, 10*time.Second, 10*time.Millisecond, "the mediator tried to log in")
	time.Sleep(200 * time.Millisecond)    // the jobs meet the backoff
	b.oi.AddUser(imisUser, imisPass, nil) // fixed before the client's second try
	b.requireExactlyOnce(t, claims)

	done, snoozes := b.completedClaimJobs(t, len(claims))
	for _, j := range done {
		// Attempts are used by refused logins only, never by the waits
		// between them.
		for _, e := range j.Errors {
			require.Contains(t, e.Error, "openimis login: 400", "job %d attempt %d", j.ID, e.Attempt)
		}
	}
	require.NotZero(t, slices.Max(snoozes), "jobs waited for the next login without using attempts")
}

func TestFault_TokenExpiresMidTraffic(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	claims := b.postClaims(t, "7e4e0ba1", 10)
	b.oi.ExpireTokens()
	claims = append(claims, b.postClaims(t, "7e4e0ba2", 10)...)
	b.oi.ExpireTokens()
	b.requireExactlyOnce(t, claims)
	require.GreaterOrEqual(t, b.oi.Logins(), 2, "the mediator logged in again")
}

// A proxy in front of the CHT refuses (429) more than 4 requests in flight
// while the CHT answers slowly: the CHT's concurrency limit settles at or
// below 4 and every claim is delivered exactly once.
func TestFault_CHTRefusesAboveItsConcurrency(t *testing.T) {
	t.Parallel()
	const n = 4
	b := setup(t, setupOpts{chtMaxConcurrent: n})
	// The CHT holds its answers: the first n requests stay in flight and
	// the proxy refuses the ones the limit (8 at start) lets through beyond.
	b.cht.SetLatency(time.Hour)
	claims := b.postClaims(t, "c0c0c0c0", 40)
	require.Eventually(t, func() bool { return b.cht.Refused.Load() > 0 }, 30*time.Second, 5*time.Millisecond,
		"the proxy refused requests above its concurrency")
	b.cht.SetLatency(20 * time.Millisecond)
	b.requireExactlyOnce(t, claims)
	limit := b.opts.UpstreamLimits["cht"].Limit()
	require.LessOrEqual(t, limit, n, "the limit settled at or below the CHT's concurrency")
	require.Contains(t, b.scrape(t), fmt.Sprintf(`mediator_upstream_concurrency_limit{system="cht"} %d`, limit))
	t.Logf("%d of %d CHT requests refused; limit %d", b.cht.Refused.Load(), len(b.cht.Requests()), limit)
	resp, err := http.Get(b.srv.URL + "/ready")
	require.NoError(t, err)
	defer resp.Body.Close()
	var ready struct{ Limits map[string]int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ready))
	require.Equal(t, limit, ready.Limits["cht"])
}

// The CHT saves a report only after its slow transitions, after the
// mediator gave up waiting: the retry looks for the report later than the
// CHT could still be saving it, and posts no second report.
func TestFault_CHTSavesAfterTheTimeout(t *testing.T) {
	t.Parallel()
	// The job's timeout (6 × UPSTREAM_TIMEOUT) cuts the report POST short
	// while the CHT holds the save.
	b := setup(t, setupOpts{edit: func(o *mediator.Options) {
		o.UpstreamTimeout = 300 * time.Millisecond
		o.LateSaveWait = 4 * time.Second
	}})
	release := b.cht.HoldSaves()
	claims := b.postClaims(t, "5a7e0000", 1)
	b.waitLog(t, "the previous attempt's report may still be saving in the CHT")
	release() // the transitions end: the report of the first POST is saved
	b.requireExactlyOnce(t, claims)
	require.Len(t, b.reportsFor(claims[0]), 1)
}
