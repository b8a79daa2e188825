package mediator_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// busyUpstream answers after latency, and 429 to a request that arrives
// while more than maxConcurrent are in flight (maxConcurrent 0: no bound).
type busyUpstream struct {
	latency       atomic.Int64 // time.Duration
	maxConcurrent int64
	inflight      atomic.Int64
	refused, ok   atomic.Int64
}

func (u *busyUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := u.inflight.Add(1)
	defer u.inflight.Add(-1)
	if u.maxConcurrent > 0 && n > u.maxConcurrent {
		u.refused.Add(1)
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	time.Sleep(time.Duration(u.latency.Load()))
	u.ok.Add(1)
}

// drive sends requests from senders goroutines through l until stop is
// called (at the latest when the test ends), and samples the limit every few
// milliseconds.
func drive(t *testing.T, l *mediator.UpstreamLimit, url string, senders int) (samples func() []int, stop func()) {
	t.Helper()
	done := make(chan struct{})
	var once sync.Once
	stop = func() { once.Do(func() { close(done) }) }
	client := &http.Client{Transport: l.Transport(nil), Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, err := client.Get(url)
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	var mu sync.Mutex
	var got []int
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				mu.Lock()
				got = append(got, l.Limit())
				mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		stop()
		wg.Wait()
	})
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}, stop
}

func median(xs []int) int {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// An upstream that refuses (429) more than n concurrent requests: the limit
// grows from its start towards n and then stays at or below it.
func TestUpstreamLimit_SettlesBelowAnUpstreamsConcurrency(t *testing.T) {
	t.Parallel()
	const n = 12
	up := &busyUpstream{maxConcurrent: n}
	up.latency.Store(int64(5 * time.Millisecond))
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)

	l := mediator.NewUpstreamLimit(64)
	require.Equal(t, 8, l.Limit(), "starts at 8")
	samples, stop := drive(t, l, srv.URL, 48)
	time.Sleep(3 * time.Second)
	stop()

	got := samples()
	require.NotEmpty(t, got)
	later := got[len(got)/2:]
	require.LessOrEqual(t, median(later), n, "settled at or below the upstream's concurrency: %v", later)
	require.Greater(t, slices.Max(got), 8, "it grew while the upstream kept up")
	require.Greater(t, up.ok.Load(), 20*up.refused.Load(), "few requests were refused once it settled")
}

// An upstream that slows down: the limit shrinks; once it recovers, the
// limit grows back.
func TestUpstreamLimit_ShrinksWhenSlowGrowsBackAfter(t *testing.T) {
	t.Parallel()
	up := &busyUpstream{}
	up.latency.Store(int64(2 * time.Millisecond))
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)

	l := mediator.NewUpstreamLimit(32)
	drive(t, l, srv.URL, 32)
	require.Eventually(t, func() bool { return l.Limit() >= 16 }, 10*time.Second, 5*time.Millisecond, "grows while the upstream keeps up")

	up.latency.Store(int64(150 * time.Millisecond)) // far slower than the floor
	require.Eventually(t, func() bool { return l.Limit() <= 8 }, 10*time.Second, 5*time.Millisecond, "shrinks while slow")

	up.latency.Store(int64(2 * time.Millisecond))
	require.Eventually(t, func() bool { return l.Limit() >= 16 }, 10*time.Second, 5*time.Millisecond, "grows back after recovery")
}

// An upstream whose endpoints differ in latency (a settings read answers at
// once, a search or a report takes 50 ms): the slow endpoint is measured
// against its own floor, so the limit grows while it keeps up instead of
// shrinking to one request at a time against the fast endpoint's floor.
func TestUpstreamLimit_FloorPerEndpoint(t *testing.T) {
	t.Parallel()
	fast := &busyUpstream{}
	slow := &busyUpstream{}
	slow.latency.Store(int64(50 * time.Millisecond))
	mux := http.NewServeMux()
	mux.Handle("/api/settings", fast)
	mux.Handle("/api/v2/records/", slow)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	l := mediator.NewUpstreamLimit(64)
	client := &http.Client{Transport: l.Transport(nil), Timeout: 5 * time.Second}
	for range 5 {
		resp, err := client.Get(srv.URL + "/api/settings")
		require.NoError(t, err)
		resp.Body.Close()
	}
	samples, stop := drive(t, l, srv.URL+"/api/v2/records/9f0c2e61", 48)
	require.Eventually(t, func() bool { return l.Limit() >= 24 }, 10*time.Second, 5*time.Millisecond,
		"grows while the slow endpoint keeps up: %v", samples())
	stop()
}

// A request that waits for a permit until its deadline is near is not sent,
// and says why; the permits in flight are not lost.
func TestUpstreamLimit_WaitsThenGivesUpBeforeSending(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	l := mediator.NewUpstreamLimit(1)
	client := &http.Client{Transport: l.Transport(nil)}
	go func() { _, _ = client.Get(srv.URL) }() // holds the only permit
	require.Eventually(t, func() bool { return sent.Load() == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	_, err = client.Do(req)
	require.ErrorIs(t, err, mediator.ErrUpstreamBusy)
	require.Equal(t, int64(1), sent.Load(), "the waiting request was not sent")
	require.Equal(t, 1, l.Inflight())
}
