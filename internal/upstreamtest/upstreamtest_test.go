package upstreamtest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/internal/upstreamtest"
)

func TestFaults_QueuedInOrderPerPath(t *testing.T) {
	t.Parallel()
	f := upstreamtest.NewFaults(0)
	f.FailNextPath("/a", 1, 500)
	f.FailNext(2, 429)
	require.Equal(t, 429, f.TakeFail("/b"), "a path rule is skipped for another path")
	require.Equal(t, 500, f.TakeFail("/a"), "rules are used in the order they were queued")
	require.Equal(t, 429, f.TakeFail("/a"))
	require.Equal(t, 0, f.TakeFail("/a"), "used up")

	f.DropNextPath("/x", 1)
	require.False(t, f.TakeDrop("/y"))
	require.True(t, f.TakeDrop("/x"))
	require.False(t, f.TakeDrop("/x"))

	f.SetDown(503)
	require.Equal(t, 503, f.Down())
	f.SetDown(0)
	require.Equal(t, 0, f.Down())
	require.Panics(t, func() { f.FailNext(1, 42) })
}

func TestFaults_DelayFollowsLatencyChanges(t *testing.T) {
	t.Parallel()
	f := upstreamtest.NewFaults(time.Hour)
	done := make(chan struct{})
	go func() { f.Delay(context.Background(), time.Now()); close(done) }()
	select {
	case <-done:
		t.Fatal("Delay returned before the latency passed")
	case <-time.After(20 * time.Millisecond):
	}
	f.SetLatency(0)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a latency set to zero did not release the delayed answer")
	}

	f.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Delay(ctx, time.Now()) // returns: the client went away

	done = make(chan struct{})
	go func() { f.Delay(context.Background(), time.Now()); close(done) }()
	f.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the delayed answer")
	}
}

func TestRecorder_KeepsCopies(t *testing.T) {
	t.Parallel()
	var rec upstreamtest.Recorder
	r := httptest.NewRequest(http.MethodPost, "/p%20q?x=1", strings.NewReader("0123456789"))
	r.Header.Set("Authorization", "Basic abc")
	body, err := rec.Record(r, 4, time.Unix(5, 0))
	require.NoError(t, err)
	require.Equal(t, "01234", string(body), "the body is cut at the limit + 1 byte")
	got := rec.Requests()
	require.Len(t, got, 1)
	require.Equal(t, "/p q", got[0].Path)
	require.Equal(t, "x=1", got[0].RawQuery)
	require.Equal(t, "Basic abc", got[0].Header.Get("Authorization"))
	got[0].Body[0] = 'X'
	require.Equal(t, "01234", string(rec.Requests()[0].Body), "Requests returns copies")
}
