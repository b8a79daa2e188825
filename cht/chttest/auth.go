package chttest

import (
	"crypto/subtle"
	"net"
	"net/http"
	"time"
)

// The failed-login limiter of api/src/services/rate-limit.js: 10 points per
// 10 seconds per key.
const (
	limitPoints = 10
	limitWindow = 10 * time.Second
)

// failures is one key's failures in a fixed window, as
// rate-limiter-flexible's RateLimiterMemory counts them: the window starts at
// the first failure and later ones do not extend it.
type failures struct {
	start time.Time
	count int
}

// authorize is auth.check (api/src/auth.js:39-78): the request's Basic
// credentials are checked against CouchDB _session, and wrong or missing
// ones get 401 (with CHT 4.x's require_valid_user). Then a failure queued
// with FailNext applies. It returns the answer and false when the request
// must stop here.
func (x *exchange) authorize() (response, bool) {
	user, pass, ok := x.r.BasicAuth()
	if !ok ||
		subtle.ConstantTimeCompare([]byte(user), []byte(x.s.username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(x.s.password)) != 1 {
		return x.notLoggedIn(), false
	}
	if status := x.s.TakeFail(x.r.URL.Path); status != 0 {
		return x.faultResponse(status), false
	}
	x.authorized = true
	return response{}, true
}

// limitKeys are the limiter's keys for a request (rate-limit.js getKeys): the
// client IP, and the Basic username and password when present. They share
// one namespace. loggingIn reports a Basic username: only such requests are
// refused (api/src/middleware/rate-limiter.js), but every request's
// failures count.
func limitKeys(r *http.Request) (keys []string, loggingIn bool) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	keys = []string{ip}
	user, pass, _ := r.BasicAuth()
	for _, k := range []string{user, pass} {
		if k != "" {
			keys = append(keys, k)
		}
	}
	return keys, user != ""
}

// isLimited reports whether a key of a logging-in request has used up its
// points in the current window: the limiter then answers 429 whatever the
// credentials (docs/upstreams/cht.md §6, trap 14).
func (s *Server) isLimited(r *http.Request) bool {
	keys, loggingIn := limitKeys(r)
	if !loggingIn {
		return false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if w := s.limiter[k]; w != nil && now.Before(w.start.Add(limitWindow)) && w.count >= limitPoints {
			return true
		}
	}
	return false
}

// countFailure charges one point to every key of r, as the limiter does when
// an answer ends with 401 or 429. A 429 counts too, so a client that keeps
// trying stays locked out.
func (s *Server) countFailure(r *http.Request) {
	keys, _ := limitKeys(r)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if w := s.limiter[k]; w != nil && now.Before(w.start.Add(limitWindow)) {
			w.count++
		} else {
			s.limiter[k] = &failures{start: now, count: 1}
		}
	}
}
