package fhirtest

import (
	"sync"
	"time"
)

// Clock is the fake's time: the real time shifted by what Advance added, so
// that a fake used by a running mediator keeps moving while a test can jump
// ahead to make retries and expiries due without sleeping. The zero value is
// the real time; it is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the real time plus every Advance so far, in UTC.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset).UTC()
}

// Advance moves the clock forward by d. Nothing happens by itself: time-driven
// behaviour (retries, expiry) runs at the next [Server.Tick].
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		panic("fhirtest: Clock.Advance with a negative duration")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}
