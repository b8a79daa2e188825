package mediator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// UpstreamLimit is the adaptive concurrency limit of one upstream system:
// how many requests the mediator has in flight to it at once. It follows the
// upstream (AIMD, as TCP's congestion window and Netflix's concurrency-limits
// do): while answers come back without overload signals and near the
// latency floor, the limit grows by one each time a limit's worth of
// requests succeeds; a 429, a 503, a timeout or an answer far slower than the
// floor shrinks it multiplicatively, at most once per window so that the
// answers to one burst count once. After a refusal it grows back only up to
// the concurrency the upstream refused at, for holdAfterRefusal, so that it
// settles there instead of probing past it again and again. It never leaves
// [1, ceiling].
//
// A request that finds the limit reached waits for a permit, for at most
// its context's deadline less a margin; a request that gives up waiting
// fails with ErrUpstreamBusy before it is sent.
type UpstreamLimit struct {
	ceiling float64
	now     func() time.Time

	mu       sync.Mutex
	limit    float64
	inflight int
	waiters  []chan struct{}
	// floors are the latency floors of the upstream's endpoints (operation):
	// a request is slow against its own endpoint's floor, since one
	// upstream's endpoints differ (a settings read answers in a millisecond,
	// a report whose transitions run in the request in tens).
	floors map[string]*latencyFloor
	// lastDecrease is when the limit last shrank; answers to requests sent
	// before it do not shrink it again.
	lastDecrease time.Time
	// refusedAt is how many requests were in flight when the upstream last
	// refused one (less that one); the limit stays at or below it until
	// holdUntil.
	refusedAt float64
	holdUntil time.Time
}

// ErrUpstreamBusy is the error of a request that waited for a permit of its
// upstream's limit until its deadline was near: it was not sent.
var ErrUpstreamBusy = errors.New("upstream concurrency limit reached; request not sent")

// Limit tuning.
const (
	// initialLimit is where a limit starts (or the ceiling, when lower).
	initialLimit = 8
	// backoffOverload shrinks the limit on a 429, a 503 or a timeout.
	backoffOverload = 0.5
	// backoffSlow shrinks the limit on an answer far slower than the floor.
	backoffSlow = 0.9
	// slowFactor and slowSlack: an answer is slow when it took longer than
	// slowFactor × floor + slowSlack (the slack keeps a fast upstream's
	// scheduling noise from counting as queueing).
	slowFactor = 3
	slowSlack  = 25 * time.Millisecond
	// floorWindow is how long a latency floor is remembered: a floor that
	// rose for good (the upstream moved, or got slower) is forgotten within
	// two windows.
	floorWindow = 30 * time.Second
	// holdAfterRefusal is how long the limit stays at or below the
	// concurrency an upstream refused at; after it, the limit probes above
	// again, in case the upstream got more capacity.
	holdAfterRefusal = 30 * time.Second
	// minLimit is the lowest a limit goes: one request at a time (not to be
	// confused with the latency floor).
	minLimit = 1
)

// NewUpstreamLimit returns a limit that adapts between 1 and ceiling.
func NewUpstreamLimit(ceiling int) *UpstreamLimit {
	ceiling = max(ceiling, minLimit)
	return &UpstreamLimit{
		ceiling: float64(ceiling),
		limit:   float64(min(ceiling, initialLimit)),
		now:     time.Now,
		floors:  map[string]*latencyFloor{},
	}
}

// Limit returns the current limit.
func (l *UpstreamLimit) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// Min returns the lowest the limit goes: a limit pinned at its minimum means the
// upstream keeps signalling overload.
func (l *UpstreamLimit) Min() int { return minLimit }

// Inflight returns how many requests hold a permit.
func (l *UpstreamLimit) Inflight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}

// acquire waits for a permit until ctx ends; it returns the time the
// request may be sent at.
func (l *UpstreamLimit) acquire(ctx context.Context) (time.Time, error) {
	l.mu.Lock()
	if l.inflight < int(l.limit) && len(l.waiters) == 0 {
		l.inflight++
		l.mu.Unlock()
		return l.now(), nil
	}
	ready := make(chan struct{})
	l.waiters = append(l.waiters, ready)
	l.mu.Unlock()
	select {
	case <-ready:
		return l.now(), nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ready {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return time.Time{}, ctx.Err()
			}
		}
		// The permit was handed over while ctx ended: give it back.
		l.inflight--
		l.wake()
		return time.Time{}, ctx.Err()
	}
}

// loadSignal is what one answer says about the upstream's load.
type loadSignal int

const (
	signalOK       loadSignal = iota // answered, not overloaded
	signalOverload                   // 429, 503, a timeout
	signalNone                       // says nothing about load (a refused connection, a cancelled request)
)

// release returns a permit and adapts the limit to the request to endpoint
// (operation) sent at sent that took rtt.
func (l *UpstreamLimit) release(endpoint string, sent time.Time, rtt time.Duration, o loadSignal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	now := l.now()
	switch o {
	case signalOverload:
		if !sent.Before(l.lastDecrease) {
			// Those still in flight were all the upstream took.
			l.refusedAt, l.holdUntil = max(minLimit, float64(l.inflight)), now.Add(holdAfterRefusal)
		}
		l.decrease(sent, backoffOverload)
	case signalOK:
		if rtt > slowFactor*l.floorOf(endpoint).observe(now, rtt)+slowSlack {
			l.decrease(sent, backoffSlow)
		} else if l.inflight+1 >= int(l.limit)/2 {
			// Grow only while the limit is in use: an idle upstream says
			// nothing about how much more it takes.
			next := min(l.ceiling, l.limit+1/l.limit)
			if now.Before(l.holdUntil) {
				next = min(next, max(l.limit, l.refusedAt))
			}
			l.limit = next
		}
	}
	l.wake()
}

// decrease shrinks the limit by factor, unless it already shrank after the
// request was sent. The caller holds l.mu.
func (l *UpstreamLimit) decrease(sent time.Time, factor float64) {
	if sent.Before(l.lastDecrease) {
		return
	}
	l.limit = max(minLimit, l.limit*factor)
	l.lastDecrease = l.now()
}

// maxEndpoints bounds the endpoints whose floors a limit keeps; requests
// to others share one floor.
const maxEndpoints = 32

// floorOf returns the latency floor of endpoint. The caller holds l.mu.
func (l *UpstreamLimit) floorOf(endpoint string) *latencyFloor {
	f, ok := l.floors[endpoint]
	if !ok {
		if len(l.floors) >= maxEndpoints {
			endpoint = ""
			if f, ok = l.floors[endpoint]; ok {
				return f
			}
		}
		f = &latencyFloor{}
		l.floors[endpoint] = f
	}
	return f
}

// latencyFloor is the lowest latency of one endpoint seen in the current
// and previous floor windows: its latency without queueing. A floor that
// rose for good (the upstream moved, or got slower) is forgotten within two
// windows.
type latencyFloor struct {
	floor, next time.Duration
	since       time.Time
}

// observe records rtt and returns the floor.
func (f *latencyFloor) observe(now time.Time, rtt time.Duration) time.Duration {
	if f.since.IsZero() || now.Sub(f.since) >= floorWindow {
		if f.since.IsZero() || f.next == 0 {
			f.floor = rtt
		} else {
			f.floor = f.next
		}
		f.next, f.since = rtt, now
	}
	f.next = min(f.next, rtt)
	f.floor = min(f.floor, rtt)
	return f.floor
}

// wake hands free permits to waiters, oldest first. The caller holds l.mu.
func (l *UpstreamLimit) wake() {
	for len(l.waiters) > 0 && l.inflight < int(l.limit) {
		l.inflight++
		close(l.waiters[0])
		l.waiters = l.waiters[1:]
	}
}

// Transport wraps base so that every request to this upstream holds a
// permit while it is in flight, and its answer adapts the limit.
func (l *UpstreamLimit) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &limitedTransport{l: l, base: base}
}

type limitedTransport struct {
	l    *UpstreamLimit
	base http.RoundTripper
}

// permitMargin is how much of a request's deadline is left for the request
// itself when it stops waiting for a permit.
const permitMargin = 2 * time.Second

// RoundTrip implements http.RoundTripper.
func (t *limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-min(permitMargin, time.Until(deadline)/2)))
		defer cancel()
	}
	asked := t.l.now()
	sent, err := t.l.acquire(ctx)
	if err != nil {
		if r.Context().Err() != nil {
			return nil, r.Context().Err()
		}
		return nil, fmt.Errorf("%w (limit %d)", ErrUpstreamBusy, t.l.Limit())
	}
	resp, err := t.base.RoundTrip(r)
	rtt := t.l.now().Sub(sent)
	signal := classifyAnswer(r, resp, err)
	if signal == signalOverload && err != nil && sent.Sub(asked) > time.Millisecond {
		// It timed out after waiting for its permit: the deadline was spent
		// partly here, so the timeout says nothing about the upstream (it
		// would shrink the limit that made it wait, and so on).
		signal = signalNone
	}
	endpoint := "" // only an answer's latency is compared with its endpoint's floor
	if signal == signalOK {
		endpoint = operation(r)
	}
	t.l.release(endpoint, sent, rtt, signal)
	return resp, err
}

// classifyAnswer reads an answer as a load signal.
func classifyAnswer(r *http.Request, resp *http.Response, err error) loadSignal {
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		return signalOverload
	case err != nil:
		if r.Context().Err() == nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				return signalOverload
			}
		}
		return signalNone
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusServiceUnavailable:
		return signalOverload
	}
	return signalOK
}
