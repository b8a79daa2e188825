package mediator

import (
	"sync"
	"time"
)

// Failed Basic auth throttling: after authFailureLimit wrong credentials
// within authFailureWindow from one client address, that address is answered
// 429, without its credentials being checked, until the window passes.
const (
	authFailureLimit   = 10
	authFailureWindow  = time.Minute
	authThrottleTables = 10000 // addresses remembered at most
)

// authThrottle counts failed logins per client address in fixed windows
// that start at an address's first failure. Its table is bounded: expired
// windows are swept when it is full, and then an arbitrary address is
// forgotten.
type authThrottle struct {
	limit   int
	window  time.Duration
	max     int
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]*authWindow
}

// authWindow is one address's failures in its current window.
type authWindow struct {
	start    time.Time
	failures int // wrong credentials counted, up to the limit
	refused  int // requests answered 429 while throttled
}

func newAuthThrottle(now func() time.Time) *authThrottle {
	return &authThrottle{limit: authFailureLimit, window: authFailureWindow, max: authThrottleTables,
		now: now, entries: map[string]*authWindow{}}
}

// throttled reports whether addr is throttled now and for how long yet; it
// counts the refusal.
func (t *authThrottle) throttled(addr string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.entries[addr]
	if w == nil || w.failures < t.limit {
		return 0, false
	}
	left := w.start.Add(t.window).Sub(t.now())
	if left <= 0 {
		return 0, false
	}
	w.refused++
	return left, true
}

// authFailure is the outcome of counting one failed login.
type authFailure struct {
	// failures is the count in the address's current window.
	failures int
	// throttled is true when this failure made the address throttled.
	throttled bool
	// until is when the address's window ends.
	until time.Time
	// ended, when non-nil, is the address's previous window, which had
	// throttled it and has now passed.
	ended *authWindow
}

// fail counts a failed login from addr.
func (t *authThrottle) fail(addr string) authFailure {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var out authFailure
	w := t.entries[addr]
	if w != nil && !now.Before(w.start.Add(t.window)) {
		if w.failures >= t.limit {
			ended := *w
			out.ended = &ended
		}
		w = nil
	}
	if w == nil {
		t.makeRoom(now)
		w = &authWindow{start: now}
		t.entries[addr] = w
	}
	if w.failures < t.limit {
		w.failures++
		out.throttled = w.failures == t.limit
	}
	out.failures, out.until = w.failures, w.start.Add(t.window)
	return out
}

// makeRoom keeps the table under its bound: when full, it drops expired
// windows, and when none has expired, an arbitrary address.
func (t *authThrottle) makeRoom(now time.Time) {
	if len(t.entries) < t.max {
		return
	}
	for addr, w := range t.entries {
		if !now.Before(w.start.Add(t.window)) {
			delete(t.entries, addr)
		}
	}
	for addr := range t.entries {
		if len(t.entries) < t.max {
			return
		}
		delete(t.entries, addr)
	}
}

// size is the number of addresses remembered.
func (t *authThrottle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
