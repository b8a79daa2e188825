package mediator

import (
	"context"
	"sync"
	"time"
)

// deliveryPacer is the WORKERS upstream slots of the delivery jobs, paced so
// that acknowledgements come first. The intake (a claim, a feedback, a FHIR
// notification: store a job and answer) and the delivery jobs share the
// mediator's CPU, and Go has no goroutine priorities: on a saturated core
// every answer waits behind the jobs' request building, JSON and store work.
// The pacer watches how long the intake takes to acknowledge and, while the
// acknowledgements are slow, lets fewer jobs hold an upstream slot at once,
// so that fewer of them compete with the intake for the CPU; when they are
// fast again it gives the slots back.
//
// It is an AIMD controller over periods of pacePeriod: a period in which more
// than paceSlowShare of the acknowledgements took longer than the target (its
// p99 above the target) halves the slots; a period within the target adds
// one; a period without any acknowledgement (nothing to protect) doubles
// them. The slots never leave [1, WORKERS]: delivery slows down while claims
// pour in, and never stops.
//
// A job that finds no slot free waits for one; a job that stops waiting
// (its context ends) takes none.
type deliveryPacer struct {
	ceiling int
	target  time.Duration
	now     func() time.Time

	mu      sync.Mutex
	limit   int
	inUse   int
	waiters []chan struct{}
	// periodStart is when the current period began; acks and slow count its
	// acknowledgements, and those slower than target.
	periodStart time.Time
	acks, slow  int
}

// Pacing tuning.
const (
	// defaultAckTarget is the acknowledgement latency (p99 over a period)
	// the pacer keeps: half the 40 ms the intake is meant to stay under
	// while delivering.
	defaultAckTarget = 20 * time.Millisecond
	// pacePeriod is how often the slots adapt: long enough for a few hundred
	// acknowledgements under load, short enough to follow a burst.
	pacePeriod = 100 * time.Millisecond
	// paceSlowShare is the share of a period's acknowledgements allowed to
	// be slower than the target (1 %: the p99).
	paceSlowShare = 0.01
	// minSlots is the fewest upstream slots the jobs keep: delivery never
	// stops.
	minSlots = 1
)

// newDeliveryPacer returns a pacer of ceiling slots (all of them free to
// start with) that keeps acknowledgements within target.
func newDeliveryPacer(ceiling int, target time.Duration, now func() time.Time) *deliveryPacer {
	ceiling = max(ceiling, minSlots)
	return &deliveryPacer{ceiling: ceiling, target: target, now: now, limit: ceiling, periodStart: now()}
}

// Slots returns how many upstream slots the jobs may hold now.
func (p *deliveryPacer) Slots() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adapt(p.now())
	return p.limit
}

// InUse returns how many upstream slots jobs hold.
func (p *deliveryPacer) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// acknowledged records one acknowledgement of the intake that took d.
func (p *deliveryPacer) acknowledged(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adapt(p.now())
	p.acks++
	if d > p.target {
		p.slow++
	}
}

// acquire waits for a slot until ctx ends.
func (p *deliveryPacer) acquire(ctx context.Context) error {
	p.mu.Lock()
	p.adapt(p.now())
	if p.inUse < p.limit && len(p.waiters) == 0 {
		p.inUse++
		p.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	p.waiters = append(p.waiters, ready)
	p.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, w := range p.waiters {
			if w == ready {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				return ctx.Err()
			}
		}
		// The slot was handed over while ctx ended: give it back.
		p.inUse--
		p.wake()
		return ctx.Err()
	}
}

// release frees a slot.
func (p *deliveryPacer) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse--
	p.adapt(p.now())
	p.wake()
}

// adapt closes the periods that ended by now and adapts the slots to them.
// It runs on every acknowledgement and every slot taken or freed, so the
// pacer needs no goroutine of its own: while nothing happens, nothing needs
// pacing. The caller holds p.mu.
func (p *deliveryPacer) adapt(now time.Time) {
	elapsed := now.Sub(p.periodStart)
	if elapsed < pacePeriod {
		return
	}
	switch {
	case p.acks == 0:
		// No intake in the period, nor (when more than one passed) in the
		// periods since: double once for each.
		for n := elapsed / pacePeriod; n > 0 && p.limit < p.ceiling; n-- {
			p.limit = min(p.ceiling, 2*p.limit)
		}
	case float64(p.slow) > paceSlowShare*float64(p.acks):
		p.limit = max(minSlots, p.limit/2)
	default:
		p.limit = min(p.ceiling, p.limit+1)
	}
	p.acks, p.slow, p.periodStart = 0, 0, now
	p.wake()
}

// wake hands free slots to waiters, oldest first. The caller holds p.mu.
func (p *deliveryPacer) wake() {
	for len(p.waiters) > 0 && p.inUse < p.limit {
		p.inUse++
		close(p.waiters[0])
		p.waiters = p.waiters[1:]
	}
}
