package chttest

import (
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"time"
)

const (
	// limitPoints and limitWindowLength are the failed-login limiter's
	// settings (api/src/services/rate-limit.js): 10 points per 10 seconds.
	limitPoints       = 10
	limitWindowLength = 10 * time.Second
)

// limitWindow is one key's failure count in a fixed window, as
// rate-limiter-flexible's RateLimiterMemory keeps it. The window starts at the
// first failure and is not extended by later ones.
type limitWindow struct {
	start time.Time
	count int
}

// authorize checks the Basic credentials, as auth.check does through CouchDB
// _session. Then it applies a queued FailNext. It returns the answer to send
// and false when the request must stop here.
func (x *exchange) authorize() (response, bool) {
	user, pass, ok := x.r.BasicAuth()
	if !ok ||
		subtle.ConstantTimeCompare([]byte(user), []byte(x.s.username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(x.s.password)) != 1 {
		return x.notLoggedIn(), false
	}
	if status := x.s.takeFail(x.r.URL.Path); status != 0 {
		return x.faultResponse(status), false
	}
	x.authorized = true
	return response{}, true
}

// limitKeys returns the limiter keys of a request: the client IP, then the
// Basic username and password when present (rate-limit.js getKeys). The keys
// share one namespace, as in the real limiter. loggingIn reports whether the
// request carries a Basic username, the only requests that are limited
// (middleware/rate-limiter.js).
func limitKeys(r *http.Request) (keys []string, loggingIn bool) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	keys = append(keys, ip)
	hdr := r.Header.Get("Authorization")
	if !strings.HasPrefix(hdr, "Basic ") {
		return keys, false
	}
	fields := strings.Split(hdr, " ")
	decoded, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return keys, false
	}
	// auth.basicAuthCredentials splits on every ':' and keeps the first two
	// parts.
	parts := strings.Split(string(decoded), ":")
	if parts[0] != "" {
		keys = append(keys, parts[0])
		loggingIn = true
	}
	if len(parts) > 1 && parts[1] != "" {
		keys = append(keys, parts[1])
	}
	return keys, loggingIn
}

// isLimited reports whether any key of r has used up its points in the
// current window.
func (s *Server) isLimited(r *http.Request) bool {
	keys, loggingIn := limitKeys(r)
	if !loggingIn {
		return false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		w := s.limiter[k]
		if w != nil && now.Before(w.start.Add(limitWindowLength)) && w.count >= limitPoints {
			return true
		}
	}
	return false
}

// consumeLimit charges one failure to every key of r, as the limiter does
// when an answer finishes with 401 or 429.
func (s *Server) consumeLimit(r *http.Request) {
	keys, _ := limitKeys(r)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, w := range s.limiter {
		if !now.Before(w.start.Add(limitWindowLength)) {
			delete(s.limiter, k)
		}
	}
	for _, k := range keys {
		w := s.limiter[k]
		if w == nil {
			s.limiter[k] = &limitWindow{start: now, count: 1}
			continue
		}
		w.count++
	}
}
