package chttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/upstreamtest"
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

	// maxBodyBytes is the API's MAX_REQUEST_SIZE, the body parsers' limit
	// (api/src/routing.js:88-92): 32 MiB.
	maxBodyBytes = 32 << 20
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Username and Password are the only credentials the fake accepts.
	// Defaults to DefaultUsername and DefaultPassword.
	Username, Password string
	// Places are the ids of places (health_center contacts) that exist at
	// start. nil means one place, DefaultPlaceID; an empty slice means none.
	Places []string
	// Forms are the JSON form definitions of app_settings.forms, keyed by
	// upper-case form code. nil means DefaultForms().
	Forms map[string]json.RawMessage
	// Latency delays every answer, after the request took effect. SetLatency
	// changes it later. Defaults to none.
	Latency time.Duration
	// Now is the clock for reported dates, the login limiter and the request
	// log. Defaults to time.Now.
	Now func() time.Time
	// MaxConcurrent, when positive, puts a proxy in front of the API that
	// answers 429 Too Many Requests to a request arriving while
	// MaxConcurrent others are in flight, as nginx's limit_conn with
	// limit_conn_status 429 does. The API never sees such a request, so its
	// failed-login limiter does not count it. Refused requests are recorded.
	MaxConcurrent int
}

// Request is one request the fake received, recorded before any check or
// fault applied to it.
type Request = upstreamtest.Request

// Server is a fake CHT API and an http.Handler. New and NewServer serve it
// on 127.0.0.1. The embedded Recorder keeps the request log (Requests); the
// embedded Faults hold the injected faults (FailNext, FailNextPath, DropNext,
// DropNextPath, SetDown, SetLatency).
type Server struct {
	upstreamtest.Recorder
	*upstreamtest.Faults

	// URL is the base URL of the running fake, without a trailing slash. It
	// is empty for a Server from NewHandler.
	URL string
	// Username and Password are the accepted credentials, for tests to read.
	Username, Password string

	username, password string
	forms              map[string]*formDef
	rawForms           map[string]json.RawMessage
	now                func() time.Time
	srv                *httptest.Server
	closeOnce          sync.Once

	mu           sync.Mutex
	contacts     map[string]map[string]any
	contactOrder []string
	reports      map[string]map[string]any
	reportOrder  []string
	// contactView and reportView are the freetext views, updated when a doc
	// is written, as CouchDB updates a view index.
	contactView, reportView view
	limiter                 map[string]*failures
	lostSaves               int
	savesHeld               chan struct{}
	releases                []func()
	faultHeaders            map[int]http.Header

	maxConcurrent int
	inflight      atomic.Int64
	// Refused counts the requests the proxy refused (MaxConcurrent).
	Refused atomic.Int64
}

// New starts a fake CHT on 127.0.0.1 with a random port. Call Close when
// done. New panics if an Options.Forms entry is not a form definition.
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

// NewHandler returns a fake CHT that is not listening, for mounting on a
// listener of the caller's choice. Call Close to release delayed answers.
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
		Faults:   upstreamtest.NewFaults(opts.Latency),
		Username: opts.Username, Password: opts.Password,
		username: opts.Username, password: opts.Password,
		forms: forms, rawForms: opts.Forms, now: opts.Now,
		contacts: map[string]map[string]any{}, reports: map[string]map[string]any{},
		contactView: view{}, reportView: view{},
		limiter: map[string]*failures{}, maxConcurrent: opts.MaxConcurrent,
	}
	for _, id := range opts.Places {
		s.AddPlace(id)
	}
	return s
}

// Close stops the fake: delayed answers are released at once, and Close
// waits for requests in flight. It can be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.Faults.Close()
		s.mu.Lock()
		releases := s.releases
		s.mu.Unlock()
		for _, release := range releases {
			release()
		}
		if s.srv != nil {
			s.srv.Close()
		}
	})
}

// Client returns an HTTP client for the running fake (http.DefaultClient for
// a Server from NewHandler). It sends no credentials by itself.
func (s *Server) Client() *http.Client {
	if s.srv == nil {
		return http.DefaultClient
	}
	return s.srv.Client()
}

// ServeHTTP records the request, answers it, and then applies the injected
// faults that act on the answer: a dropped connection and latency. Both come
// after the request took effect, as when a real answer is lost or slow.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	body, err := s.Record(r, maxBodyBytes, s.now())
	if s.maxConcurrent > 0 {
		defer s.inflight.Add(-1)
		if s.inflight.Add(1) > int64(s.maxConcurrent) {
			s.Refused.Add(1)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte("<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"))
			return
		}
	}
	x := &exchange{s: s, r: r, body: body, bodyErr: err, wantsJSON: wantsJSON(r.Header.Values("Accept"))}
	resp := s.handle(x)
	drop := x.authorized && s.TakeDrop(r.URL.Path)
	s.Delay(r.Context(), arrived)
	if drop {
		upstreamtest.DropConnection(w)
		return
	}
	resp.write(w, r.Method == http.MethodHead)
}

// handle runs the API's global middleware, then the router. While the API
// starts up, the start-up router answers everything, before authentication
// (api/src/services/setup/router.js). Otherwise the failed-login limiter
// (api/src/middleware/rate-limiter.js) refuses a locked-out client and
// counts every 401 and 429 answer as a failure.
func (s *Server) handle(x *exchange) response {
	if down := s.Down(); down != 0 {
		return x.downResponse(down)
	}
	var resp response
	if s.isLimited(x.r) {
		resp = x.respond(http.StatusTooManyRequests, "Too Many Requests", nil)
	} else {
		resp = s.route(x)
	}
	if resp.status == http.StatusUnauthorized || resp.status == http.StatusTooManyRequests {
		s.countFailure(x.r)
	}
	return resp
}

// route dispatches as the Express router of api/src/routing.js does: strict
// routing (no trailing-slash tolerance) and case-insensitive paths. The real
// API proxies anything else to CouchDB, which answers 404 for these paths.
func (s *Server) route(x *exchange) response {
	segs, ok := splitPath(x.r.URL.EscapedPath())
	get := x.r.Method == http.MethodGet || x.r.Method == http.MethodHead
	post := x.r.Method == http.MethodPost
	switch {
	case !ok:
	case post && matchPath(segs, "api", "v2", "records"):
		return s.postRecord(x)
	case post && matchPath(segs, "api", "v1", "people"):
		return s.postPeople(x)
	case get && matchPath(segs, "api", "v1", "person", "*"):
		return s.getContactDoc(x, segs[4], isPersonDoc, "Person not found")
	case get && matchPath(segs, "api", "v1", "place", "*"):
		return s.getContactDoc(x, segs[4], isPlaceDoc, "Place not found")
	case get && matchPath(segs, "api", "v1", "contact", "uuid"):
		return s.getUUIDs(x, s.contactView, true)
	case get && matchPath(segs, "api", "v1", "report", "uuid"):
		return s.getUUIDs(x, s.reportView, false)
	case get && matchPath(segs, "api", "v1", "settings"):
		return s.getSettings(x)
	case get && matchPath(segs, "api", "info"):
		return jsonResponse(http.StatusOK, map[string]any{"version": Version})
	}
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	return couchNotFound()
}

// splitPath splits an escaped path into its decoded segments; the first is
// the empty string before the leading slash.
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

// matchPath reports whether segs is "/" followed by the pattern's segments,
// literal ones compared case-insensitively; "*" matches a non-empty segment.
func matchPath(segs []string, pattern ...string) bool {
	if len(segs) != len(pattern)+1 || segs[0] != "" {
		return false
	}
	for i, p := range pattern {
		if seg := segs[i+1]; (p == "*" && seg == "") || (p != "*" && !strings.EqualFold(seg, p)) {
			return false
		}
	}
	return true
}

// couchNotFound is CouchDB's answer for a path whose first segment is not a
// database: where the real API proxies unknown paths.
func couchNotFound() response {
	return response{
		status: http.StatusNotFound,
		header: http.Header{"Content-Type": {"application/json"}},
		body:   []byte(`{"error":"not_found","reason":"Database does not exist."}` + "\n"),
	}
}
