package openimistest

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// FHIRPath is the path below the site root at which the fake mounts the FHIR
// R4 API, as openIMIS does with SITE_ROOT "api/".
const FHIRPath = "/api/api_fhir_r4/"

// maxBodyBytes bounds how much of a request body the fake reads.
const maxBodyBytes = 10 << 20

// Options configures a [Server]. The zero value is a release 24.10 server with
// one user admin/admin holding every right.
type Options struct {
	// ClaimSubscriptions makes POST Subscription/ accept the criteria resource
	// Claim (needing right 111001), as newer upstream builds do. Defaults to
	// false: release 24.10 answers 400 "Error while saving a subscription:
	// Invalid resource (claim)".
	ClaimSubscriptions bool

	// CountCacheTTL is how long the total of a list query is cached per
	// distinct filter, as upstream caches COUNT(*) per SQL query. Defaults to
	// one hour; a negative value disables the cache.
	CountCacheTTL time.Duration

	// Now is the server's clock (token expiry, creation times, subscription
	// expiry, the count cache, _lastUpdated=ap, request times). Defaults to
	// time.Now.
	Now func() time.Time

	// Password is the password of the user named by Username. Defaults to
	// "admin".
	Password string

	// PublicBaseURL is the scheme://host[:port] the server believes it is
	// reached at, used for Bundle links and fullUrl values (upstream uses the
	// host and scheme Django sees, which differ behind a proxy). Defaults to
	// "http://" plus the request's Host header.
	PublicBaseURL string

	// QuestionnaireResponse enables POST QuestionnaireResponse/, which no
	// openIMIS release has. Defaults to false: the path answers Django's HTML
	// 404 page.
	QuestionnaireResponse bool

	// Rights lists the right codes of the user named by Username. Nil means
	// every right; an empty non-nil slice means none.
	Rights []int

	// SkipSeed starts the server without the fixture Patient and ClaimResponse.
	SkipSeed bool

	// TokenLifetime is the lifetime of tokens issued by login/ (upstream
	// JWT_EXPIRATION_DELTA). Defaults to 24 hours.
	TokenLifetime time.Duration

	// Username is the openIMIS user accepted by login/ and HTTP Basic.
	// Defaults to "admin".
	Username string

	// ValidationStatus is the HTTP status of validation errors in Subscription,
	// Communication and QuestionnaireResponse bodies. Defaults to 500, as in
	// release 24.10; newer builds answer 400.
	ValidationStatus int
}

// withDefaults returns a copy of o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.Username == "" {
		o.Username = "admin"
	}
	if o.Password == "" {
		o.Password = "admin"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenLifetime == 0 {
		o.TokenLifetime = 24 * time.Hour
	}
	if o.CountCacheTTL == 0 {
		o.CountCacheTTL = time.Hour
	}
	if o.ValidationStatus == 0 {
		o.ValidationStatus = http.StatusInternalServerError
	}
	if o.Rights != nil {
		o.Rights = slices.Clone(o.Rights)
	}
	return o
}

// Request is one HTTP request the server received, recorded before any
// processing (including requests answered by injected faults).
type Request struct {
	// Body is the request body as received (at most 10 MiB).
	Body []byte
	// Header is a copy of the request headers.
	Header http.Header
	// Method is the HTTP method.
	Method string
	// Path is the decoded URL path, e.g. "/api/api_fhir_r4/login/".
	Path string
	// RawQuery is the encoded query string without the "?".
	RawQuery string
	// Time is the server clock's time of arrival.
	Time time.Time
}

// Server is a running fake openIMIS server. Create it with [New] or
// [NewServer]. Its exported methods are safe for concurrent use.
type Server struct {
	// URL is the site root, e.g. "http://127.0.0.1:41234", without a
	// trailing slash. The FHIR API is at [Server.FHIRURL].
	URL string

	client    *http.Client
	closeOnce sync.Once
	closed    chan struct{}
	httpd     *httptest.Server
	key       []byte
	opts      Options

	mu             sync.Mutex
	claimSeq       int
	claims         map[string]*claim
	communications []Communication
	countCache     map[string]cachedCount
	down           int
	dropRules      []*faultRule
	failRules      []*faultRule
	latency        time.Duration
	// latencyChanged is closed (and replaced) when the latency changes.
	latencyChanged         chan struct{}
	logins                 int
	patients               map[string]*patient
	questionnaireResponses []QuestionnaireResponse
	requests               []Request
	subscriptions          []*subscription
	tokenEpoch             int
	users                  map[string]*user
}

// New starts a fake openIMIS server on 127.0.0.1 with a random port. Call
// [Server.Close] when done; tests should prefer [NewServer].
func New(opts Options) *Server {
	s := NewHandler(opts)
	s.httpd = httptest.NewServer(s)
	s.URL = s.httpd.URL
	return s
}

// NewServer starts a fake openIMIS server like [New] and closes it when the
// test ends.
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	tb.Cleanup(s.Close)
	return s
}

// NewHandler returns a fake openIMIS server that is not listening anywhere,
// for mounting on a listener of the caller's choice (a sandbox demo). Its URL
// is empty; links follow the Host header or [Options.PublicBaseURL]. Call
// Close to release delayed answers.
func NewHandler(opts Options) *Server {
	opts = opts.withDefaults()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("openimistest: " + err.Error())
	}
	s := &Server{
		client:         &http.Client{},
		closed:         make(chan struct{}),
		latencyChanged: make(chan struct{}),
		key:            key,
		opts:           opts,
		claims:         map[string]*claim{},
		countCache:     map[string]cachedCount{},
		patients:       map[string]*patient{},
		users:          map[string]*user{},
	}
	s.users[opts.Username] = newUser(opts.Username, opts.Password, opts.Rights)
	if !opts.SkipSeed {
		s.seed()
	}
	return s
}

// Close shuts the server down: delayed answers are released at once, and
// Close waits for requests in flight to finish. It can be called more than
// once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.httpd != nil {
			s.httpd.Close()
		}
		s.client.CloseIdleConnections()
	})
}

// Client returns an HTTP client for the running fake, as
// httptest.Server.Client does, or http.DefaultClient for a Server from
// [NewHandler]. It sends no credentials by itself and follows redirects.
func (s *Server) Client() *http.Client {
	if s.httpd == nil {
		return http.DefaultClient
	}
	return s.httpd.Client()
}

// FHIRURL returns the base URL of the FHIR API, URL + "/api/api_fhir_r4/".
func (s *Server) FHIRURL() string {
	return s.URL + FHIRPath
}

// Requests returns a copy of every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Body = slices.Clone(r.Body)
		r.Header = r.Header.Clone()
		out[i] = r
	}
	return out
}

// ServeHTTP implements [http.Handler]. A request is recorded, then answered
// by an injected fault or processed; latency and dropped answers apply after
// processing, so a request whose client gives up has still taken effect.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		http.Error(w, "openimistest: reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	arrived := time.Now()
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Body:     body,
		Header:   r.Header.Clone(),
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Time:     s.now(),
	})
	fault := s.down
	if fault == 0 {
		fault = takeRule(&s.failRules, r.URL.Path)
	}
	drop := fault == 0 && takeRule(&s.dropRules, r.URL.Path) != 0
	s.mu.Unlock()

	rec := httptest.NewRecorder()
	if fault != 0 {
		writeInjectedFault(rec, r, fault)
	} else {
		s.route(rec, r, body)
	}
	s.delay(r.Context(), arrived)
	if drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// now returns the server clock's current time in UTC.
func (s *Server) now() time.Time {
	return s.opts.Now().UTC()
}

// endpoint names one route of the FHIR API.
type endpoint int

const (
	epRoot endpoint = iota + 1
	epLogin
	epSubscriptions
	epSubscription
	epPatients
	epPatient
	epClaimResponses
	epClaimResponse
	epCommunications
	epCommunication
	epQuestionnaireResponses
	epQuestionnaireResponse
)

// collections maps a router prefix to its list and detail endpoints.
var collections = map[string][2]endpoint{
	"login":         {epLogin, 0},
	"Subscription":  {epSubscriptions, epSubscription},
	"Patient":       {epPatients, epPatient},
	"ClaimResponse": {epClaimResponses, epClaimResponse},
	"Communication": {epCommunications, epCommunication},
}

// resolve matches a decoded path against the routes of the DRF router,
// returning the endpoint and the detail id.
func (s *Server) resolve(path string) (endpoint, string, bool) {
	rest, ok := strings.CutPrefix(path, FHIRPath)
	if !ok {
		return 0, "", false
	}
	if rest == "" {
		return epRoot, "", true
	}
	if !strings.HasSuffix(rest, "/") {
		return 0, "", false
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) > 2 {
		return 0, "", false
	}
	eps, ok := collections[parts[0]]
	if !ok && parts[0] == "QuestionnaireResponse" && s.opts.QuestionnaireResponse {
		eps, ok = [2]endpoint{epQuestionnaireResponses, epQuestionnaireResponse}, true
	}
	if !ok {
		return 0, "", false
	}
	if len(parts) == 1 {
		return eps[0], "", true
	}
	// DRF's default lookup pattern is [^/.]+.
	id := parts[1]
	if eps[1] == 0 || id == "" || strings.Contains(id, ".") {
		return 0, "", false
	}
	return eps[1], id, true
}

// route dispatches a request after the fault hooks.
func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	ep, id, ok := s.resolve(r.URL.Path)
	if !ok {
		if !strings.HasSuffix(r.URL.Path, "/") {
			if _, _, ok := s.resolve(r.URL.Path + "/"); ok {
				writeAppendSlash(w, r)
				return
			}
		}
		writeDjango404(w, r)
		return
	}
	c := &call{body: body, id: id, r: r, s: s, w: w}
	switch ep {
	case epRoot:
		c.serve(view{handlers: map[string]func(*call){http.MethodGet: (*call).apiRoot}})
	case epLogin:
		c.serve(view{handlers: map[string]func(*call){http.MethodPost: (*call).login}})
	case epSubscriptions:
		c.serve(subscriptionsView)
	case epSubscription:
		c.serve(subscriptionView)
	case epPatients:
		c.serve(patientsView)
	case epPatient:
		c.serve(patientView)
	case epClaimResponses:
		c.serve(claimResponsesView)
	case epClaimResponse:
		c.serve(claimResponseView)
	case epCommunications:
		c.serve(communicationsView)
	case epCommunication:
		c.serve(communicationView)
	case epQuestionnaireResponses:
		c.serve(questionnaireResponsesView)
	case epQuestionnaireResponse:
		c.serve(questionnaireResponseView)
	}
}

// view describes one DRF view: its handlers, rights and whether it needs an
// authenticated user.
type view struct {
	// auth requires an authenticated user (DRF permission classes other than
	// AllowAny).
	auth bool
	// handlers are the modelled methods.
	handlers map[string]func(*call)
	// lastUpdated makes get_queryset parse _lastUpdated during the permission
	// check, as the ClaimResponse, Patient, Communication and Subscription
	// views do.
	lastUpdated bool
	// name is the route name used in messages, e.g. "Subscription/".
	name string
	// notModelled lists methods upstream serves but the fake does not model.
	notModelled []string
	// rights maps a method to the right code it needs.
	rights map[string]int
}

// call is the state of one request as it goes through a view.
type call struct {
	body   []byte
	filter lastUpdatedFilter
	id     string
	r      *http.Request
	s      *Server
	user   *user
	w      http.ResponseWriter
}

// serve runs the DRF request pipeline: content negotiation, authentication,
// permissions (with get_queryset), then the handler.
func (c *call) serve(v view) {
	if !acceptable(c.r.Header.Values("Accept")) {
		c.fail(errNotAcceptable())
		return
	}
	u, err := c.s.authenticate(c.r)
	if err != nil {
		c.fail(err)
		return
	}
	c.user = u
	if v.auth && u == nil {
		c.fail(errNotAuthenticated())
		return
	}
	if v.lastUpdated {
		f, err := parseLastUpdated(c.r.URL.Query(), c.s.now())
		if err != nil {
			c.fail(err)
			return
		}
		c.filter = f
	}
	method := c.r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if right := v.rights[method]; right != 0 && !u.has(right) {
		c.fail(errPermissionDenied(msgNoPermission))
		return
	}
	if method == http.MethodOptions {
		c.fail(errNotModelled(c.r.Method, v.name))
		return
	}
	if h, ok := v.handlers[method]; ok {
		h(c)
		return
	}
	if slices.Contains(v.notModelled, method) {
		c.fail(errNotModelled(c.r.Method, v.name))
		return
	}
	c.fail(errMethodNotAllowed(c.r.Method))
}

// apiRoot answers GET /api/api_fhir_r4/ like DRF's DefaultRouter root view.
func (c *call) apiRoot() {
	base := c.s.baseURL(c.r) + FHIRPath
	root := map[string]string{
		"login":         base + "login/",
		"Subscription":  base + "Subscription/",
		"Patient":       base + "Patient/",
		"ClaimResponse": base + "ClaimResponse/",
		"Communication": base + "Communication/",
	}
	if c.s.opts.QuestionnaireResponse {
		root["QuestionnaireResponse"] = base + "QuestionnaireResponse/"
	}
	c.json(http.StatusOK, root)
}

// baseURL returns scheme://host as the server believes it is reached.
func (s *Server) baseURL(r *http.Request) string {
	if s.opts.PublicBaseURL != "" {
		return strings.TrimSuffix(s.opts.PublicBaseURL, "/")
	}
	return "http://" + r.Host
}
