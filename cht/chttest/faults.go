package chttest

import (
	"fmt"
	"net/http"
	"time"
)

// faultRule is one queued fault: the next remaining requests whose path is
// path (any path when path is "") get the fault.
type faultRule struct {
	path      string
	remaining int
	status    int
}

// FailNext makes the next n authenticated requests, on any path, answer
// status with the body the CHT API sends for that status. Examples are
// {"code":500,"error":"Server error"}, the 401 "unauthorized" answer, or
// {"code":429,"error":"Too Many Requests"}. Nothing is stored. The requests
// are still recorded, and a 401 or 429 counts towards the login limiter.
// Failures queued by FailNext and FailNextPath are used up in the order they
// were queued.
func (s *Server) FailNext(n, status int) {
	s.FailNextPath("", n, status)
}

// FailNextPath is FailNext for requests whose decoded URL path is exactly
// path, e.g. "/api/v2/records". An empty path matches every request.
func (s *Server) FailNextPath(path string, n, status int) {
	if n <= 0 {
		return
	}
	if status < 100 || status > 599 {
		panic(fmt.Sprintf("chttest: FailNext status %d is not an HTTP status", status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRules = append(s.failRules, &faultRule{path: path, remaining: n, status: status})
}

// DropNext makes the next n authenticated requests, on any path, take full
// effect (a report or person is stored) and then lose their answer: the
// connection is closed without a response. This is the lost-response case
// that follows a client timeout, without waiting for the timeout. Go's
// Transport may re-send an idempotent request (GET) on its own after a
// dropped answer on a reused connection.
func (s *Server) DropNext(n int) {
	s.DropNextPath("", n)
}

// DropNextPath is DropNext for requests whose decoded URL path is exactly
// path. An empty path matches every request.
func (s *Server) DropNextPath(path string, n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropRules = append(s.dropRules, &faultRule{path: path, remaining: n})
}

// LoseNextSaves makes the next n valid records POSTs fail to save their
// report inside the CHT: nothing is stored, and the answer is still 200, as
// {"success":true} without an id (CHT contract §2, trap 1).
func (s *Server) LoseNextSaves(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lostSaves += max(n, 0)
}

// SetDown makes every request answer status until SetDown(0) clears it. The
// check runs before authentication and before the login limiter, because
// the API answers from its start-up router then.
//
// SetDown(503) copies the API while it starts or upgrades
// (api/src/services/setup/router.js). A request whose Accept prefers JSON
// gets 503 {"error":"Service unavailable"}. Any other request gets
// 200 with an HTML "starting up" page, so a client that does not send
// Accept: application/json sees a 200. Any other status answers that status
// with the CHT error body for it.
func (s *Server) SetDown(status int) {
	if status != 0 && (status < 100 || status > 599) {
		panic(fmt.Sprintf("chttest: SetDown status %d is not an HTTP status", status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = status
}

// SetLatency delays every answer by d from the request's arrival. The
// request takes effect first, so a records POST whose client times out has
// still stored its report. The delay ends early when the client goes away or
// the server closes. The new latency applies to answers being delayed too:
// zero removes the delay and sends them at once.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
	close(s.latencyChanged)
	s.latencyChanged = make(chan struct{})
}

// takeFail returns the status of the first queued failure for path and uses
// it up, or 0.
func (s *Server) takeFail(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := takeRule(&s.failRules, path)
	if r == nil {
		return 0
	}
	return r.status
}

// takeDrop reports whether a queued drop applies to path, and uses it up.
func (s *Server) takeDrop(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return takeRule(&s.dropRules, path) != nil
}

// takeRule finds the first rule matching path, decrements it and drops used
// up rules. The caller holds s.mu.
func takeRule(rules *[]*faultRule, path string) *faultRule {
	for i, r := range *rules {
		if r.path != "" && r.path != path {
			continue
		}
		r.remaining--
		if r.remaining == 0 {
			*rules = append((*rules)[:i:i], (*rules)[i+1:]...)
		}
		return r
	}
	return nil
}

// faultResponse is the CHT-shaped answer for an injected status.
func (x *exchange) faultResponse(status int) response {
	switch status {
	case http.StatusUnauthorized:
		return x.notLoggedIn()
	case http.StatusForbidden:
		return x.respond(status, "Insufficient privileges", nil)
	case http.StatusNotFound:
		return couchNotFound()
	case http.StatusRequestEntityTooLarge:
		return x.respond(status, "Payload Too Large", nil)
	case http.StatusTooManyRequests:
		return x.respond(status, "Too Many Requests", nil)
	case http.StatusInternalServerError:
		return x.serverError(nil)
	case http.StatusServiceUnavailable:
		if x.wantsJSON {
			return jsonResponse(status, map[string]string{"error": "Service unavailable"})
		}
		return textResponse(status, "Service unavailable")
	}
	if status < 400 {
		return textResponse(status, http.StatusText(status))
	}
	return x.respond(status, http.StatusText(status), nil)
}

// downResponse is the answer while SetDown is in force.
func (x *exchange) downResponse(status int) response {
	if status != http.StatusServiceUnavailable || x.wantsJSON {
		return x.faultResponse(status)
	}
	return response{
		status: http.StatusOK,
		header: http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		body:   []byte(startupPage),
	}
}

// startupPage stands in for the API's start-up progress page.
const startupPage = `<!DOCTYPE html>
<html><head><title>CHT is starting up</title></head>
<body><h1>API is starting up</h1><p>Please wait.</p></body></html>
`
