package openhimtest

import (
	"fmt"
)

// faultRule is one queued fault: the next remaining requests whose decoded
// path is path (any path when path is "") get it.
type faultRule struct {
	path      string
	remaining int
	status    int
}

// FailNext makes the next n API requests, on any path and whatever their
// credentials, answer status without being processed: nothing is stored,
// and the body is Koa's status text (e.g. "Internal Server Error"), as core
// sends for an error without a message. The requests are still recorded.
// Failures queued by FailNext and FailNextPath are used up in the order they
// were queued.
func (s *Server) FailNext(n, status int) {
	s.FailNextPath("", n, status)
}

// FailNextPath is FailNext for requests whose decoded URL path is exactly
// path, e.g. "/mediators/urn:mediator:x/heartbeat". An empty path matches
// every request.
func (s *Server) FailNextPath(path string, n, status int) {
	if n <= 0 {
		return
	}
	if status < 100 || status > 599 {
		panic(fmt.Sprintf("openhimtest: FailNext status %d is not an HTTP status", status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRules = append(s.failRules, &faultRule{path: path, remaining: n, status: status})
}

// DropNext makes the next n API requests, on any path, take full effect
// (a registration stored, a heartbeat's _lastHeartbeat moved on, so a
// pending config delivery is used up) and then lose their answer: the
// connection is closed without a response. Go's Transport may re-send an
// idempotent request (GET) on its own after a dropped answer on a reused
// connection.
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
	s.dropRules = append(s.dropRules, &faultRule{path: path, remaining: n, status: -1})
}

// SetDown makes every API request answer status, with Koa's status text,
// until SetDown(0) clears it. Nothing is processed. It stands for a core
// that is starting or failing; a core that is not listening at all is best
// tested by closing the Server.
func (s *Server) SetDown(status int) {
	if status != 0 && (status < 100 || status > 599) {
		panic(fmt.Sprintf("openhimtest: SetDown status %d is not an HTTP status", status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = status
}

// takeRule consumes one use of the first rule matching path and returns its
// status, or 0 when none matches. The caller holds s.mu.
func takeRule(rules *[]*faultRule, path string) int {
	for i, r := range *rules {
		if r.path != "" && r.path != path {
			continue
		}
		r.remaining--
		if r.remaining <= 0 {
			*rules = append((*rules)[:i:i], (*rules)[i+1:]...)
		}
		return r.status
	}
	return 0
}
