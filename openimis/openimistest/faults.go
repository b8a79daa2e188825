package openimistest

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// faultRule is one queued fault: the next remaining requests whose decoded
// path is path (any path when path is "") get it.
type faultRule struct {
	path      string
	remaining int
	status    int
}

// FailNext makes the next n requests, of any kind and on any path (login
// included), answer status without being processed. Nothing is stored; the
// requests are still recorded. The body is what openIMIS or the proxy in
// front of it sends for that status: 401 an OperationOutcome
// "INCORRECT_CREDENTIALS", 403 "You do not have permission to perform this
// action.", 429 "Rate limit exceeded" (MODE=PROD, no Retry-After), 500 an
// OperationOutcome of an unexpected error, 404 Django's HTML page, anything
// else an HTML proxy error page. Failures queued by FailNext and
// FailNextPath are used up in the order they were queued.
func (s *Server) FailNext(n, status int) {
	s.FailNextPath("", n, status)
}

// FailNextPath is FailNext for requests whose decoded URL path is exactly
// path, e.g. "/api/api_fhir_r4/Communication/". An empty path matches every
// request.
func (s *Server) FailNextPath(path string, n, status int) {
	if n <= 0 {
		return
	}
	if status < 100 || status > 599 {
		panic(fmt.Sprintf("openimistest: FailNext status %d is not an HTTP status", status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRules = append(s.failRules, &faultRule{path: path, remaining: n, status: status})
}

// DropNext makes the next n requests, on any path, take full effect (a
// subscription or feedback is stored) and then lose their answer: the
// connection is closed without a response. This is the lost-response case
// behind a client timeout, e.g. a Communication retried into "Feedback
// exists for this claim". Go's Transport may re-send an idempotent request
// (GET) on its own after a dropped answer on a reused connection.
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

// SetDown makes every request answer status, with the bodies of
// [Server.FailNext], until SetDown(0) clears it. Nothing is processed.
func (s *Server) SetDown(status int) {
	if status != 0 && (status < 100 || status > 599) {
		panic(fmt.Sprintf("openimistest: SetDown status %d is not an HTTP status", status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = status
}

// SetLatency delays every answer by d from the request's arrival. The
// request takes effect first, so a POST whose client times out has still
// stored what it carried. The delay ends early when the client goes away or
// the server closes. The new latency applies to answers being delayed too:
// zero removes the delay and sends them at once.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
	close(s.latencyChanged)
	s.latencyChanged = make(chan struct{})
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

// delay holds an answer until the latency has passed since the request
// arrived, re-timed when the latency changes, or until the client goes away
// or the server closes.
func (s *Server) delay(ctx context.Context, arrived time.Time) {
	for {
		s.mu.Lock()
		d, changed := time.Until(arrived.Add(s.latency)), s.latencyChanged
		s.mu.Unlock()
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return
		case <-changed:
			t.Stop() // the latency changed: wait out the new one
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.closed:
			t.Stop()
			return
		}
	}
}

// writeInjectedFault answers a request failed by FailNext or SetDown.
func writeInjectedFault(w http.ResponseWriter, r *http.Request, status int) {
	switch status {
	case http.StatusUnauthorized:
		writeJSON(w, status, outcomeOf(errAuthenticationFailed(msgIncorrectCredentials)))
	case http.StatusForbidden:
		writeJSON(w, status, outcomeOf(errPermissionDenied(msgNoPermission)))
	case http.StatusTooManyRequests:
		writeJSON(w, status, outcomeOf(errFatal(status, "Rate limit exceeded")))
	case http.StatusInternalServerError:
		writeJSON(w, status, outcomeOf(errServer("openimistest: injected fault")))
	case http.StatusNotFound:
		writeDjango404(w, r)
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n"+
			"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", status, http.StatusText(status), status, http.StatusText(status))
	}
}
