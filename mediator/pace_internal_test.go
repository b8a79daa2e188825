package mediator

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// pacerPeriod records acks acknowledgements in one pace period, slow of them
// slower than the target, then closes the period.
func pacerPeriod(p *deliveryPacer, clock *fakeClock, acks, slow int) int {
	for i := range acks {
		d := p.target / 2
		if i < slow {
			d = p.target + time.Millisecond
		}
		p.acknowledged(d)
	}
	clock.advance(pacePeriod)
	return p.Slots()
}

func newTestPacer(ceiling int) (*deliveryPacer, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	return newDeliveryPacer(ceiling, 20*time.Millisecond, clock.now), clock
}

func TestDeliveryPacer_BacksOffWhileAcknowledgementsAreSlow(t *testing.T) {
	t.Parallel()
	p, clock := newTestPacer(64)
	require.Equal(t, 64, p.Slots(), "all slots to start with")
	var got []int
	for range 9 {
		// 2 of 100 above the target: the p99 is.
		got = append(got, pacerPeriod(p, clock, 100, 2))
	}
	require.Equal(t, []int{32, 16, 8, 4, 2, 1, 1, 1, 1}, got, "halved each slow period, never below one")
}

func TestDeliveryPacer_OneSlowAnswerInAHundredIsWithinTarget(t *testing.T) {
	t.Parallel()
	p, clock := newTestPacer(64)
	pacerPeriod(p, clock, 100, 100)
	require.Equal(t, 32, p.Slots())
	require.Equal(t, 33, pacerPeriod(p, clock, 100, 1), "p99 at the target: one more slot")
	require.Equal(t, 16, pacerPeriod(p, clock, 3, 1), "one slow in three is slow")
}

func TestDeliveryPacer_RecoversWhenAcknowledgementsAreFastAgain(t *testing.T) {
	t.Parallel()
	p, clock := newTestPacer(64)
	for range 7 {
		pacerPeriod(p, clock, 50, 50)
	}
	require.Equal(t, 1, p.Slots())
	var got []int
	for range 3 {
		got = append(got, pacerPeriod(p, clock, 200, 0))
	}
	require.Equal(t, []int{2, 3, 4}, got, "one more slot each period within the target")
	// Without intake nothing needs protecting: the slots double each
	// period, up to WORKERS.
	got = got[:0]
	for range 5 {
		got = append(got, pacerPeriod(p, clock, 0, 0))
	}
	require.Equal(t, []int{8, 16, 32, 64, 64}, got)
}

func TestDeliveryPacer_AllSlotsBackAfterAQuietSpell(t *testing.T) {
	t.Parallel()
	p, clock := newTestPacer(64)
	for range 7 {
		pacerPeriod(p, clock, 10, 10)
	}
	require.Equal(t, 1, p.Slots())
	// Nothing for a second (ten periods), seen at the next slot taken.
	clock.advance(time.Second)
	require.NoError(t, p.acquire(context.Background()))
	require.Equal(t, 64, p.Slots())
	p.release()
}

func TestDeliveryPacer_JobsHoldNoMoreThanTheSlots(t *testing.T) {
	t.Parallel()
	p, clock := newTestPacer(4)
	ctx := context.Background()
	for range 4 {
		require.NoError(t, p.acquire(ctx))
	}
	// A fifth job waits.
	got := make(chan error, 1)
	go func() { got <- p.acquire(ctx) }()
	require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.waiters) == 1 }, 10*time.Second, time.Millisecond)

	// Slow acknowledgements take two slots away: the two freed next are
	// not handed over.
	pacerPeriod(p, clock, 10, 10)
	require.Equal(t, 2, p.Slots())
	p.release()
	p.release()
	require.Equal(t, 2, p.InUse())
	select {
	case err := <-got:
		t.Fatalf("a job took a slot above the limit (%v)", err)
	default:
	}
	// The next one is.
	p.release()
	require.NoError(t, <-got)
	require.Equal(t, 2, p.InUse())
}

func TestDeliveryPacer_OneSlotStaysWhateverTheLatency(t *testing.T) {
	t.Parallel()
	p, clock := newTestPacer(8)
	ctx := context.Background()
	for range 20 {
		pacerPeriod(p, clock, 1000, 1000)
		// Delivery goes on, one job at a time.
		require.NoError(t, p.acquire(ctx))
		require.Equal(t, 1, p.InUse())
		p.release()
	}
	require.Equal(t, 1, p.Slots())
}

func TestDeliveryPacer_AJobThatStopsWaitingTakesNoSlot(t *testing.T) {
	t.Parallel()
	p, _ := newTestPacer(1)
	require.NoError(t, p.acquire(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, p.acquire(ctx), context.Canceled)
	p.release()
	require.Equal(t, 0, p.InUse())
	require.NoError(t, p.acquire(context.Background()), "the slot is free")
}
