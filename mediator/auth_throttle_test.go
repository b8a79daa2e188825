package mediator

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAuthThrottle_WindowAndBound(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newAuthThrottle(func() time.Time { return now })

	for i := 1; i < authFailureLimit; i++ {
		f := th.fail("10.0.0.1")
		require.False(t, f.throttled)
		require.Equal(t, i, f.failures)
	}
	_, throttled := th.throttled("10.0.0.1")
	require.False(t, throttled)
	require.True(t, th.fail("10.0.0.1").throttled, "the limit-th failure throttles")
	left, throttled := th.throttled("10.0.0.1")
	require.True(t, throttled)
	require.Equal(t, authFailureWindow, left)
	_, throttled = th.throttled("10.0.0.2")
	require.False(t, throttled, "per address")

	now = now.Add(authFailureWindow)
	_, throttled = th.throttled("10.0.0.1")
	require.False(t, throttled, "the window passed")
	f := th.fail("10.0.0.1")
	require.Equal(t, 1, f.failures, "a new window")
	require.NotNil(t, f.ended)
	require.Equal(t, authFailureLimit, f.ended.failures)
	require.Equal(t, 1, f.ended.refused)

	for i := range 3 * authThrottleTables {
		th.fail(fmt.Sprintf("10.1.%d.%d", i/256, i%256))
		now = now.Add(time.Millisecond)
	}
	require.LessOrEqual(t, th.size(), authThrottleTables, "the table is bounded")
}
