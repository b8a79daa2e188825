// Package upstreamtest holds what the fake upstreams (openimistest, chttest,
// openhimtest) share and what none of them is about: the record of the
// requests a fake received, and the faults a test injects into it (queued
// failures, dropped answers, an upstream that is down, latency). Each fake
// embeds a Recorder and a Faults and decides, for its own system, what an
// injected status looks like on the wire.
package upstreamtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Request is one request a fake received, recorded before any fault or check
// applied to it.
type Request struct {
	// Body is the request body as received (cut at the fake's limit + 1 byte).
	Body []byte
	// Header is a copy of the request headers, Authorization included.
	Header http.Header
	// Method is the HTTP method.
	Method string
	// Path is the decoded URL path.
	Path string
	// RawQuery is the encoded query, without "?".
	RawQuery string
	// Time is when the fake received the request, on the fake's clock.
	Time time.Time
}

// Recorder keeps every request a fake received. The zero value is ready to
// use; it is safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	requests []Request
}

// Record reads r's body (at most limit bytes + 1), records the request at
// time now and returns the body. A body that could not be read is recorded as
// far as it was read, and the error is returned.
func (rec *Recorder) Record(r *http.Request, limit int64, now time.Time) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	rec.mu.Lock()
	rec.requests = append(rec.requests, Request{
		Body:     append([]byte(nil), body...),
		Header:   r.Header.Clone(),
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Time:     now,
	})
	rec.mu.Unlock()
	return body, err
}

// Requests returns a copy of every request received so far, oldest first.
func (rec *Recorder) Requests() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]Request, len(rec.requests))
	for i, r := range rec.requests {
		r.Header = r.Header.Clone()
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// Faults holds the faults a test injected into a fake. Create it with
// NewFaults; its methods are safe for concurrent use. The fake asks it, for
// each request, whether to fail it (TakeFail, Down), whether to lose its
// answer (TakeDrop), and waits out the latency (Delay) before answering.
type Faults struct {
	mu             sync.Mutex
	fail, drop     []*rule
	down           int
	latency        time.Duration
	latencyChanged chan struct{}
	closed         chan struct{}
	closeOnce      sync.Once
}

// rule is one queued fault: the next remaining requests whose decoded path
// is path (any path when path is "") get it.
type rule struct {
	path      string
	remaining int
	status    int
}

// NewFaults returns Faults with nothing injected and the given latency.
func NewFaults(latency time.Duration) *Faults {
	return &Faults{
		latency:        latency,
		latencyChanged: make(chan struct{}),
		closed:         make(chan struct{}),
	}
}

// FailNext makes the next n requests, on any path, answer status without
// being processed. Failures queued by FailNext and FailNextPath are used up
// in the order they were queued. The fake decides the body of each status.
func (f *Faults) FailNext(n, status int) { f.FailNextPath("", n, status) }

// FailNextPath is FailNext for requests whose decoded URL path is exactly
// path. An empty path matches every request.
func (f *Faults) FailNextPath(path string, n, status int) {
	if n <= 0 {
		return
	}
	mustStatus("FailNext", status)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, &rule{path: path, remaining: n, status: status})
}

// DropNext makes the next n requests, on any path, take full effect and
// then lose their answer: the connection is closed without a response. This
// is the lost-response case behind a client timeout, without the wait. Go's
// Transport may send an idempotent request (GET) again on its own after a
// dropped answer on a reused connection.
func (f *Faults) DropNext(n int) { f.DropNextPath("", n) }

// DropNextPath is DropNext for requests whose decoded URL path is exactly
// path. An empty path matches every request.
func (f *Faults) DropNextPath(path string, n int) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop = append(f.drop, &rule{path: path, remaining: n})
}

// SetDown makes every request answer status until SetDown(0) clears it.
func (f *Faults) SetDown(status int) {
	if status != 0 {
		mustStatus("SetDown", status)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = status
}

// SetLatency delays every answer by d from the request's arrival. The
// request takes effect first, so a POST whose client times out has still
// stored what it carried. The new latency applies to answers being delayed
// too: zero sends them at once.
func (f *Faults) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
	close(f.latencyChanged)
	f.latencyChanged = make(chan struct{})
}

// Down returns the status set by SetDown, or 0.
func (f *Faults) Down() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

// TakeFail returns the status of the first queued failure for path and uses
// it up, or 0 when none is queued.
func (f *Faults) TakeFail(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := take(&f.fail, path); r != nil {
		return r.status
	}
	return 0
}

// TakeDrop reports whether a queued drop applies to path, and uses it up.
func (f *Faults) TakeDrop(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return take(&f.drop, path) != nil
}

// take uses up one request of the first rule matching path and returns it.
// The caller holds f.mu.
func take(rules *[]*rule, path string) *rule {
	for i, r := range *rules {
		if r.path != "" && r.path != path {
			continue
		}
		r.remaining--
		if r.remaining <= 0 {
			*rules = append((*rules)[:i:i], (*rules)[i+1:]...)
		}
		return r
	}
	return nil
}

// Delay holds an answer until the latency has passed since the request
// arrived (re-timed when the latency changes), the client goes away (ctx) or
// Close is called.
func (f *Faults) Delay(ctx context.Context, arrived time.Time) {
	for {
		f.mu.Lock()
		d, changed := time.Until(arrived.Add(f.latency)), f.latencyChanged
		f.mu.Unlock()
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return
		case <-changed:
			t.Stop() // wait out the new latency
		case <-ctx.Done():
			t.Stop()
			return
		case <-f.closed:
			t.Stop()
			return
		}
	}
}

// Close ends every Delay at once, for a fake that is shutting down.
func (f *Faults) Close() { f.closeOnce.Do(func() { close(f.closed) }) }

// DropConnection closes the client's connection without an answer. Call it
// from a handler, and return.
func DropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func mustStatus(what string, status int) {
	if status < 100 || status > 599 {
		panic(fmt.Sprintf("upstreamtest: %s status %d is not an HTTP status", what, status))
	}
}
