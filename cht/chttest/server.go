package chttest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// DefaultUsername is the username the fake accepts when Options.Username
	// is empty.
	DefaultUsername = "medic"
	// DefaultPassword is the password the fake accepts when Options.Password
	// is empty.
	DefaultPassword = "password"
	// DefaultPlaceID is the id of the place that exists when Options.Places
	// is nil. It is a health_center with no parent.
	DefaultPlaceID = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"

	// maxBodyBytes is the API's MAX_REQUEST_SIZE (32mb, routing.js).
	maxBodyBytes = 32 << 20
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Username and Password are the only credentials the fake accepts.
	// Defaults to DefaultUsername and DefaultPassword.
	Username, Password string
	// Places are the ids of places (health_center contacts) that exist at
	// start. nil means one place, DefaultPlaceID. An empty non-nil slice means
	// no places.
	Places []string
	// Forms are the JSON form definitions, keyed by form code as in
	// app_settings.forms. The API upper-cases the submitted code and looks it
	// up exactly, so keys should be upper-case. nil means DefaultForms().
	Forms map[string]json.RawMessage
	// Latency delays every answer. The request is fully processed first, so a
	// client that gives up waiting has still had its effect. SetLatency
	// changes it later. Defaults to no delay.
	Latency time.Duration
	// Now is the clock used for reported dates, the login limiter and request
	// times. Defaults to time.Now.
	Now func() time.Time
}

// Server is a fake CHT API. It is an http.Handler. New and NewServer also
// serve it on a local httptest server.
type Server struct {
	// URL is the base URL of the running fake, e.g. http://127.0.0.1:41234,
	// without a trailing slash. It is empty for a Server from NewHandler.
	URL string
	// Username and Password are the accepted credentials. Changing them has
	// no effect.
	Username, Password string

	// username and password are the accepted credentials; the exported
	// copies are for tests to read.
	username, password string
	forms              map[string]*formDef
	rawForms           map[string]json.RawMessage
	now                func() time.Time

	closeOnce sync.Once
	closed    chan struct{}
	srv       *httptest.Server

	mu       sync.Mutex
	contacts map[string]map[string]any
	// contactOrder and reportOrder keep insertion order for inspection.
	contactOrder []string
	reports      map[string]map[string]any
	reportOrder  []string
	// contactView and reportView are the freetext views' rows, computed
	// when a doc is written, as CouchDB updates a view index.
	contactView viewIndex
	reportView  viewIndex
	requests    []Request
	limiter     map[string]*limitWindow
	failRules   []*faultRule
	dropRules   []*faultRule
	lostSaves   int
	down        int
	latency     time.Duration
	// latencyChanged is closed (and replaced) when the latency changes.
	latencyChanged chan struct{}
}

// New starts a fake CHT on 127.0.0.1 with a random port. Call Close when
// done. New panics if an Options.Forms entry is not a valid form definition.
func New(opts Options) *Server {
	s := NewHandler(opts)
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// NewServer is New plus tb.Cleanup(s.Close).
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	tb.Cleanup(s.Close)
	return s
}

// NewHandler returns a fake CHT that is not listening anywhere, for mounting
// on a listener of the caller's choice, e.g. in a sandbox demo. Its URL is
// empty. Call Close to release requests that are being delayed.
func NewHandler(opts Options) *Server {
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	if opts.Places == nil {
		opts.Places = []string{DefaultPlaceID}
	}
	if opts.Forms == nil {
		opts.Forms = DefaultForms()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	forms, err := parseForms(opts.Forms)
	if err != nil {
		panic("chttest: " + err.Error())
	}
	s := &Server{
		Username:       opts.Username,
		Password:       opts.Password,
		username:       opts.Username,
		password:       opts.Password,
		forms:          forms,
		rawForms:       opts.Forms,
		now:            opts.Now,
		closed:         make(chan struct{}),
		contacts:       make(map[string]map[string]any),
		reports:        make(map[string]map[string]any),
		contactView:    newViewIndex(),
		reportView:     newViewIndex(),
		limiter:        make(map[string]*limitWindow),
		latency:        opts.Latency,
		latencyChanged: make(chan struct{}),
	}
	for _, id := range opts.Places {
		s.AddPlace(id)
	}
	return s
}

// Close stops the fake. Delayed answers are released at once, and Close
// waits for requests in flight to finish. Close can be called more than
// once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.srv != nil {
			s.srv.Close()
		}
	})
}

// Client returns an HTTP client for the running fake, as
// httptest.Server.Client does, or http.DefaultClient for a Server from
// NewHandler. It sends no credentials by itself.
func (s *Server) Client() *http.Client {
	if s.srv == nil {
		return http.DefaultClient
	}
	return s.srv.Client()
}

// Request is one request the fake received, recorded before any fault hook
// or check applied.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Path is the decoded URL path.
	Path string
	// RawQuery is the encoded query, without '?'.
	RawQuery string
	// Header holds the request headers, Authorization included.
	Header http.Header
	// Body holds the request body, cut at 32 MiB + 1 byte.
	Body []byte
	// Time is when the fake received the request, on the Options.Now clock.
	Time time.Time
}

// Requests returns a copy of every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	x := &exchange{
		s:         s,
		r:         r,
		body:      body,
		bodyErr:   err,
		wantsJSON: wantsJSON(r.Header.Values("Accept")),
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Body:     append([]byte(nil), body...),
		Time:     s.now(),
	})
	s.mu.Unlock()
	start := time.Now()

	resp := s.handle(x)
	drop := x.authorized && s.takeDrop(r.URL.Path)

	s.delay(r.Context(), start)
	if drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	resp.write(w, r.Method == http.MethodHead)
}

// handle runs the request through the global middleware and the router.
func (s *Server) handle(x *exchange) response {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down != 0 {
		return x.downResponse(down)
	}
	var resp response
	if s.isLimited(x.r) {
		resp = x.respond(http.StatusTooManyRequests, "Too Many Requests", nil)
	} else {
		resp = s.route(x)
	}
	if resp.status == http.StatusUnauthorized || resp.status == http.StatusTooManyRequests {
		s.consumeLimit(x.r)
	}
	return resp
}

// route dispatches like the Express router of api/src/routing.js (strict
// routing, case-insensitive paths). Anything unmatched goes to CouchDB in the
// real system, which answers 404 for these paths.
func (s *Server) route(x *exchange) response {
	segs, ok := splitPath(x.r.URL.EscapedPath())
	method := x.r.Method
	isGet := method == http.MethodGet || method == http.MethodHead
	switch {
	case !ok:
	case method == http.MethodPost && matchPath(segs, "api", "v2", "records"):
		return s.postRecord(x)
	case method == http.MethodPost && matchPath(segs, "api", "v1", "people"):
		return s.postPeople(x)
	case isGet && matchPath(segs, "api", "v1", "person", "*"):
		return s.getPerson(x, segs[4])
	case isGet && matchPath(segs, "api", "v1", "contact", "uuid"):
		return s.getContactUUIDs(x)
	case isGet && matchPath(segs, "api", "v1", "contact", "*"):
		return s.getContact(x, segs[4])
	case isGet && matchPath(segs, "api", "v1", "report", "uuid"):
		return s.getReportUUIDs(x)
	case isGet && matchPath(segs, "api", "v1", "report", "*"):
		return s.getReport(x, segs[4])
	case isGet && matchPath(segs, "api", "v1", "place", "*"):
		return s.getContactDoc(x, segs[4], isPlaceDoc, "Place not found")
	case isGet && matchPath(segs, "api", "v1", "settings"):
		return s.getSettings(x)
	case isGet && matchPath(segs, "api", "info"):
		return jsonResponse(http.StatusOK, map[string]any{"version": Version})
	}
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	return couchNotFound()
}

// splitPath splits an escaped path into its decoded segments. The first
// element is the empty string before the leading slash.
func splitPath(escaped string) ([]string, bool) {
	parts := strings.Split(escaped, "/")
	for i, p := range parts {
		d, err := url.PathUnescape(p)
		if err != nil {
			return nil, false
		}
		parts[i] = d
	}
	return parts, true
}

// matchPath reports whether segs is "/" followed by the pattern's segments.
// Literal segments match case-insensitively, as in Express; "*" matches one
// non-empty segment.
func matchPath(segs []string, pattern ...string) bool {
	if len(segs) != len(pattern)+1 || segs[0] != "" {
		return false
	}
	for i, p := range pattern {
		seg := segs[i+1]
		if p == "*" {
			if seg == "" {
				return false
			}
			continue
		}
		if !strings.EqualFold(seg, p) {
			return false
		}
	}
	return true
}

// couchNotFound is CouchDB's answer for a path whose first segment is not a
// database, which is where the real API proxies unknown paths.
func couchNotFound() response {
	return response{
		status: http.StatusNotFound,
		header: http.Header{"Content-Type": {"application/json"}},
		body:   []byte(`{"error":"not_found","reason":"Database does not exist."}` + "\n"),
	}
}

// sleep waits for d, or until ctx ends or the server closes.
func (s *Server) delay(ctx context.Context, start time.Time) {
	for {
		s.mu.Lock()
		d, changed := time.Until(start.Add(s.latency)), s.latencyChanged
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
