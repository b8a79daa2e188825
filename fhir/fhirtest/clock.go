package fhirtest

import (
	"sync"
	"time"
)

// Clock is the fake's time. The zero value is the real time shifted by
// what Advance added, so that a fake used by a running mediator keeps moving
// while a test can still jump ahead; NewFixedClock stands still between
// Advances, for tests that check what is not due yet. Either way retries,
// batches, heartbeats and expiry run at Server.Tick, never by sleeping. It
// is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
	fixed  bool
	at     time.Time
}

// NewFixedClock returns a Clock that reads t until advanced.
func NewFixedClock(t time.Time) *Clock {
	return &Clock{fixed: true, at: t.UTC()}
}

// Now is the clock's time, in UTC.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed {
		return c.at
	}
	return time.Now().Add(c.offset).UTC()
}

// Advance moves the clock forward by d. Nothing happens by itself: what
// falls due runs at the next [Server.Tick].
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		panic("fhirtest: Clock.Advance with a negative duration")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	c.at = c.at.Add(d)
}
