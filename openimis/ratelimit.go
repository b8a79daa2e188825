package openimis

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/retryafter"
)

// ErrRateLimited is returned, without contacting openIMIS, while the client
// waits after a 429.
var ErrRateLimited = errors.New("openimis: waiting after 429 Rate limit exceeded")

// maxRateLimitPause bounds the doubling pause: openIMIS counts requests per
// minute (docs/upstreams/openimis.md §1).
const maxRateLimitPause = time.Minute

// MaxPause bounds every pause of the client: a server's Retry-After, however
// long (a proxy may send any number), and RateLimitPause.
const MaxPause = 5 * time.Minute

// RateLimitError is the answer to a request made while the client waits
// after a 429, or the 429 itself (then it also wraps the *APIError).
type RateLimitError struct {
	// Left is how long the client still sends nothing.
	Left  time.Duration
	cause error
}

// Error implements error.
func (e *RateLimitError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%v; waiting %s before the next request", e.cause, e.Left.Round(time.Millisecond))
	}
	return fmt.Sprintf("%v (%s left)", ErrRateLimited, e.Left.Round(time.Millisecond))
}

// Unwrap gives ErrRateLimited and, for the 429 itself, its *APIError.
func (e *RateLimitError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrRateLimited, e.cause}
	}
	return []error{ErrRateLimited}
}

// RetryAfterDuration is how long to wait before trying again.
func (e *RateLimitError) RetryAfterDuration() time.Duration { return e.Left }

// rateLimited returns a *RateLimitError while the client waits after a 429.
func (c *Client) rateLimited() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if left := c.pauseUntil.Sub(c.now()); left > 0 {
		return &RateLimitError{Left: left}
	}
	return nil
}

// answered updates the wait from the answer to a request sent at sent. A
// 429 stops all requests for the pause, doubled when the request was sent
// after the previous pause ended (429s that follow each other), not for the
// other answers of a burst sent before it. Any other answer to a request
// sent after the pause ends the doubling. It returns the error to report for
// a 429, else err.
func (c *Client) answered(sent time.Time, status int, retryAfter time.Duration, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	sentBeforePauseEnd := sent.Before(c.pauseUntil)
	if status != http.StatusTooManyRequests {
		if !sentBeforePauseEnd {
			c.pauseFor = 0
		}
		return err
	}
	if !sentBeforePauseEnd || !now.Before(c.pauseUntil) {
		c.pauseFor = min(max(c.pauseFor*2, c.rateLimitPause), max(maxRateLimitPause, c.rateLimitPause))
		c.pauseUntil = now.Add(min(max(c.pauseFor, retryAfter), MaxPause))
	}
	return &RateLimitError{Left: c.pauseUntil.Sub(now), cause: err}
}

// Paused reports until when the client sends nothing after a 429; a zero
// time when it does not pause.
func (c *Client) Paused() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pauseUntil.After(c.now()) {
		return time.Time{}
	}
	return c.pauseUntil
}

// parseRetryAfter reads a Retry-After header as a duration from now, at
// most MaxPause.
func parseRetryAfter(v string, now time.Time) time.Duration {
	return retryafter.Parse(v, now, MaxPause)
}
