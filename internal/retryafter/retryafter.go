// Package retryafter reads the Retry-After header of an upstream's answer,
// for the typed clients of the upstreams.
package retryafter

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads a Retry-After value (seconds or an HTTP date) as a duration
// from now, at most limit; 0 when absent, unreadable or in the past. A
// number too large to read is the limit: a server's "never" must not stop
// a client for good.
func Parse(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case n <= 0:
			return 0
		case n >= int64(limit/time.Second):
			return limit
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), limit)
	}
	return 0
}
