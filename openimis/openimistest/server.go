package openimistest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/upstreamtest"
)

// FHIRPath is the path below the site root at which openIMIS mounts the FHIR
// R4 module with SITE_ROOT "api/" (openimis-be_py
// openIMIS/openIMIS/openimisurls.py).
const FHIRPath = "/api/api_fhir_r4/"

// maxBodyBytes bounds how much of a request body the fake reads.
const maxBodyBytes = 10 << 20

// Options configures a [Server]. The zero value is a release 24.10 server with
// one user admin/admin holding every right.
type Options struct {
	// ClaimSubscriptions makes POST Subscription/ accept the criteria resource
	// Claim (needing right 111001), as newer builds do. Defaults to false:
	// release 24.10 answers 400 "Invalid resource (claim)" (trap 1).
	ClaimSubscriptions bool
	// Location is the server's local time zone (TIME_ZONE and the host's),
	// in which a Subscription's end is rendered (trap 20). Defaults to UTC.
	Location *time.Location
	// NewerCore answers a wrong password 401 "INCORRECT_CREDENTIALS", as
	// openimis-be-core_py after release 24.10 does (trap 18). Defaults to
	// false: release 24.10's 400 with an empty body.
	NewerCore bool
	// CountCacheTTL is how long the total of a list query is cached per
	// distinct query (docs/upstreams/openimis.md §6). Defaults to one hour; a
	// negative value disables the cache.
	CountCacheTTL time.Duration
	// Now is the server's clock. Defaults to time.Now.
	Now func() time.Time
	// Password is the password of Username. Defaults to "admin".
	Password string
	// QuestionnaireResponse enables POST QuestionnaireResponse/, which no
	// openIMIS release has. Defaults to false: Django's HTML 404 (trap 12).
	QuestionnaireResponse bool
	// SkipSeed starts the server without the fixture Patient and claim.
	SkipSeed bool
	// Rights lists the right codes of Username. Nil means every right; an
	// empty non-nil slice means none.
	Rights []int
	// TokenLifetime is the lifetime of login tokens (JWT_EXPIRATION_DELTA).
	// Defaults to 24 hours.
	TokenLifetime time.Duration
	// Username is the openIMIS user of login/ and HTTP Basic. Defaults to
	// "admin".
	Username string
	// ValidationStatus is the status of validation errors in Subscription,
	// Communication and QuestionnaireResponse bodies. Defaults to 500, as in
	// release 24.10; newer builds answer 400 (trap 11).
	ValidationStatus int
}

// Request is one request the server received, recorded before any fault.
type Request = upstreamtest.Request

// Server is a running fake openIMIS. Create it with [NewServer] or [New]. Its
// methods are safe for concurrent use; the fault and request-log methods
// (FailNext, FailNextPath, DropNext, DropNextPath, SetDown, SetLatency,
// Requests) come from [upstreamtest].
type Server struct {
	// URL is the site root, e.g. "http://127.0.0.1:41234", without a
	// trailing slash.
	URL string

	*upstreamtest.Faults
	upstreamtest.Recorder

	client *http.Client
	httpd  *httptest.Server
	opts   Options

	mu             sync.Mutex
	claimSeq       int
	claims         map[string]*claim
	communications []Communication
	countCache     map[string]cachedCount
	logins         int
	patients       map[string]*patient
	questionnaires []QuestionnaireResponse
	subscriptions  []*subscription
	tokens         map[string]token
	users          map[string]*user
}

// NewServer starts a fake openIMIS on 127.0.0.1 and closes it when the test
// ends.
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	tb.Cleanup(s.Close)
	return s
}

// New starts a fake openIMIS on 127.0.0.1, seeded with the upstream fixtures
// (see [SeedPatientID], [SeedClaimID]). Call [Server.Close] when done.
func New(opts Options) *Server {
	if opts.Username == "" {
		opts.Username = "admin"
	}
	if opts.Password == "" {
		opts.Password = "admin"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = 24 * time.Hour
	}
	if opts.CountCacheTTL == 0 {
		opts.CountCacheTTL = time.Hour
	}
	if opts.ValidationStatus == 0 {
		opts.ValidationStatus = http.StatusInternalServerError
	}
	s := &Server{
		Faults:     upstreamtest.NewFaults(0),
		client:     &http.Client{},
		opts:       opts,
		claims:     map[string]*claim{},
		countCache: map[string]cachedCount{},
		patients:   map[string]*patient{},
		tokens:     map[string]token{},
		users:      map[string]*user{},
	}
	s.AddUser(opts.Username, opts.Password, opts.Rights)
	if !opts.SkipSeed {
		s.seed()
	}
	s.httpd = httptest.NewServer(s)
	s.URL = s.httpd.URL
	return s
}

// Close releases delayed answers and shuts the server down. It can be called
// more than once.
func (s *Server) Close() {
	s.Faults.Close()
	s.httpd.Close()
	s.client.CloseIdleConnections()
}

// FHIRURL returns the base URL of the FHIR API, URL + [FHIRPath].
func (s *Server) FHIRURL() string { return s.URL + FHIRPath }

// now returns the server clock's time in UTC.
func (s *Server) now() time.Time { return s.opts.Now().UTC() }

// ServeHTTP records a request, then answers it with an injected fault or
// processes it. Latency and dropped answers apply after processing: a request
// whose client gives up has still taken effect.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	body, err := s.Record(r, maxBodyBytes, s.now())
	if err != nil {
		http.Error(w, "openimistest: reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	status := s.Down()
	if status == 0 {
		status = s.TakeFail(r.URL.Path)
	}
	drop := status == 0 && s.TakeDrop(r.URL.Path)
	rec := httptest.NewRecorder()
	if status != 0 {
		writeInjectedFault(rec, r, status)
	} else {
		s.route(rec, r, body)
	}
	s.Delay(r.Context(), arrived)
	if drop {
		upstreamtest.DropConnection(w)
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// writeInjectedFault answers a request failed by FailNext or SetDown with what
// openIMIS, or the proxy in front of it, sends for that status: 401 and 403 as
// the authenticators do (§1), 429 the rate limiter's "Rate limit exceeded"
// without Retry-After (core/jwt_authentication.py, trap 17), 500 an
// unexpected error's OperationOutcome, 404 Django's page, anything else an
// nginx error page.
func writeInjectedFault(w http.ResponseWriter, r *http.Request, status int) {
	switch status {
	case http.StatusUnauthorized:
		writeJSON(w, status, outcomeOf(errFatal(status, msgIncorrectCredentials)))
	case http.StatusForbidden:
		writeJSON(w, status, outcomeOf(errFatal(status, msgNoPermission)))
	case http.StatusTooManyRequests:
		writeJSON(w, status, outcomeOf(errFatal(status, "Rate limit exceeded")))
	case http.StatusInternalServerError:
		writeJSON(w, status, outcomeOf(errServer("openimistest: injected fault")))
	case http.StatusNotFound:
		writeDjango404(w, r)
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		text := fmt.Sprintf("%d %s", status, http.StatusText(status))
		_, _ = fmt.Fprintf(w, "<html><head><title>%s</title></head><body><center><h1>%s</h1></center><hr><center>nginx</center></body></html>\n", text, text)
	}
}

// view is one DRF view of the module's DefaultRouter (api_fhir_r4/urls.py).
type view struct {
	// public is login/: AllowAny, and no queryset.
	public bool
	// rights maps each method upstream serves to the right it needs (0:
	// none); other methods are 405.
	rights map[string]int
	// handlers are the methods the fake models; a served method without one
	// is 501, so a test never mistakes a gap of the fake for openIMIS.
	handlers map[string]func(*call)
}

// views maps a router prefix to its list and detail views (api_fhir_r4/urls.py).
func (s *Server) views(prefix string) (list, detail *view) {
	switch prefix {
	case "login":
		return &view{public: true, rights: map[string]int{http.MethodPost: 0}, handlers: map[string]func(*call){http.MethodPost: (*call).login}}, nil
	case "Subscription":
		// views/fhir/subscription.py; rights in defaultConfig.py.
		rights := map[string]int{http.MethodGet: RightSubscriptionSearch, http.MethodPost: RightSubscriptionCreate,
			http.MethodPut: RightSubscriptionUpdate, http.MethodDelete: RightSubscriptionDelete}
		return &view{rights: rights, handlers: map[string]func(*call){http.MethodGet: (*call).listSubscriptions, http.MethodPost: (*call).createSubscription}},
			&view{rights: rights, handlers: map[string]func(*call){http.MethodGet: (*call).getSubscription, http.MethodDelete: (*call).deleteSubscription}}
	case "Patient":
		// views/fhir/insuree.py.
		rights := map[string]int{http.MethodGet: RightInsureeRead, http.MethodPost: 101102, http.MethodPut: 101103, http.MethodDelete: 101104}
		return &view{rights: rights}, &view{rights: rights, handlers: map[string]func(*call){http.MethodGet: (*call).getPatient}}
	case "ClaimResponse":
		// views/fhir/claim_response.py.
		rights := map[string]int{http.MethodGet: RightClaimRead, http.MethodPost: 111002, http.MethodPut: 111002}
		return &view{rights: rights, handlers: map[string]func(*call){http.MethodGet: (*call).listClaimResponses}},
			&view{rights: rights, handlers: map[string]func(*call){http.MethodGet: (*call).getClaimResponse}}
	case "Claim":
		// views/fhir/claim.py: read with the claim right.
		rights := map[string]int{http.MethodGet: RightClaimRead, http.MethodPost: 111002}
		return &view{rights: rights}, &view{rights: rights, handlers: map[string]func(*call){http.MethodGet: (*call).getClaim}}
	case "Communication":
		// views/fhir/communication.py; rights in permissions.py.
		rights := map[string]int{http.MethodGet: 111010, http.MethodPost: RightFeedbackDeliver, http.MethodPut: RightFeedbackDeliver, http.MethodDelete: 111010}
		return &view{rights: rights, handlers: map[string]func(*call){http.MethodPost: (*call).createCommunication}}, &view{rights: rights}
	case "QuestionnaireResponse":
		if !s.opts.QuestionnaireResponse {
			return nil, nil
		}
		rights := map[string]int{http.MethodPost: RightFeedbackDeliver}
		return &view{rights: rights, handlers: map[string]func(*call){http.MethodPost: (*call).createQuestionnaireResponse}}, nil
	}
	return nil, nil
}

// resolve matches a decoded path against the router: "<prefix>/" or
// "<prefix>/<id>/", the id matching DRF's default [^/.]+.
func (s *Server) resolve(path string) (v *view, id string) {
	rest, ok := strings.CutPrefix(path, FHIRPath)
	if !ok || !strings.HasSuffix(rest, "/") {
		return nil, ""
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	list, detail := s.views(parts[0])
	switch {
	case len(parts) == 1:
		return list, ""
	case len(parts) == 2 && parts[1] != "" && !strings.Contains(parts[1], "."):
		return detail, parts[1]
	}
	return nil, ""
}

// route dispatches a request. A path that matches a route only with a
// trailing slash gets Django's CommonMiddleware answer (settings.py
// APPEND_SLASH, trap 10): 301 to the slashed path for GET, HEAD, DELETE and
// OPTIONS; 500 RuntimeError (MODE=DEV) for POST, PUT and PATCH. Any other
// unknown path is Django's HTML 404, not an OperationOutcome.
func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	v, id := s.resolve(r.URL.Path)
	if v != nil {
		c := &call{body: body, id: id, r: r, s: s, w: w}
		c.serve(v)
		return
	}
	if slashed, _ := s.resolve(r.URL.Path + "/"); slashed == nil || strings.HasSuffix(r.URL.Path, "/") {
		writeDjango404(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintf(w, "RuntimeError at %s\nYou called this URL via %s, but the URL doesn't end in a slash and you have "+
			"APPEND_SLASH set. Django can't redirect to the slash URL while maintaining %s data.\n", r.URL.Path, r.Method, r.Method)
	default:
		target := r.URL.EscapedPath() + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusMovedPermanently)
	}
}

// call is one request going through a view.
type call struct {
	body   []byte
	filter lastUpdatedFilter
	id     string
	r      *http.Request
	s      *Server
	user   *user
	w      http.ResponseWriter
}

// serve runs DRF's pipeline (rest_framework/views.py): content negotiation
// (406), authentication (401), the view's get_queryset, which parses
// _lastUpdated for every FHIR view (500 on a bad value), the right of the
// method (403), then the handler (405 for a method upstream does not serve).
func (c *call) serve(v *view) {
	if !acceptable(c.r.Header.Values("Accept")) {
		c.fail(errFatal(http.StatusNotAcceptable, "Could not satisfy the request Accept header."))
		return
	}
	u, err := c.s.authenticate(c.r)
	if err != nil {
		c.fail(err)
		return
	}
	c.user = u
	if !v.public {
		if u == nil {
			c.fail(errFatal(http.StatusUnauthorized, msgNotAuthenticated))
			return
		}
		if c.filter, err = parseLastUpdated(c.r.URL.Query()); err != nil {
			c.fail(err)
			return
		}
	}
	method := c.r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	right, served := v.rights[method]
	switch {
	case !served:
		c.fail(errFatal(http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", c.r.Method)))
	case right != 0 && !u.has(right):
		c.fail(errFatal(http.StatusForbidden, msgNoPermission))
	case v.handlers[method] == nil:
		c.fail(&apiError{code: "not-supported", severity: "error", status: http.StatusNotImplemented,
			text: fmt.Sprintf("openimistest: %s %s exists in openIMIS but is not modelled by this fake", c.r.Method, c.r.URL.Path)})
	default:
		v.handlers[method](c)
	}
}

// acceptable reports whether DRF's negotiation finds a renderer (JSON or the
// browsable API) for the Accept header: application/fhir+json alone is 406
// (rest_framework/negotiation.py, trap 10).
func acceptable(accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, part := range strings.Split(strings.Join(accept, ","), ",") {
		mt, _, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "*/*", "application/*", "application/json", "text/*", "text/html":
			return true
		}
	}
	return false
}

// object parses the body like DRF's JSONParser: it needs Content-Type
// application/json (parameters allowed; application/fhir+json is 415, trap
// 10) unless the body is empty, which reads as {}. Invalid JSON is 400; a
// value that is not an object fails the FHIR converter (a validation error).
func (c *call) object() (map[string]any, *apiError) {
	if len(c.body) == 0 {
		return map[string]any{}, nil
	}
	ct := c.r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return nil, errFatal(http.StatusUnsupportedMediaType, fmt.Sprintf("Unsupported media type %q in request.", ct))
	}
	var v any
	if err := json.Unmarshal(c.body, &v); err != nil {
		return nil, errFatal(http.StatusBadRequest, "JSON parse error - "+err.Error())
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, c.s.errValidation("argument after ** must be a mapping")
	}
	return m, nil
}

// Messages DRF and openIMIS use verbatim.
const (
	msgIncorrectCredentials = "INCORRECT_CREDENTIALS"
	msgNoPermission         = "You do not have permission to perform this action."
	msgNotAuthenticated     = "Authentication credentials were not provided."
)

// apiError is an error the FHIR module reports as an OperationOutcome
// (exceptions/fhir_api_exception_handler.py, §8).
type apiError struct {
	code, severity string
	status         int
	// text is a string, or a []string for a DRF ValidationError.
	text any
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %v", e.status, e.text) }

// errFatal is a DRF APIException: severity fatal.
func errFatal(status int, text any) *apiError {
	return &apiError{code: "exception", severity: "fatal", status: status, text: text}
}

// errServer is a Django or Python error: 500, severity error.
func errServer(text string) *apiError {
	return &apiError{code: "exception", severity: "error", status: http.StatusInternalServerError, text: text}
}

// errValidation is a FHIRException or pydantic error raised while converting
// a body: HTTP 500 in release 24.10 (trap 11), [Options.ValidationStatus].
func (s *Server) errValidation(text string) *apiError {
	return &apiError{code: "exception", severity: "error", status: s.opts.ValidationStatus, text: text}
}

// outcomeOf renders e as an OperationOutcome
// (converters/operationOutcomeConverter.py).
func outcomeOf(e *apiError) map[string]any {
	issue := map[string]any{"severity": e.severity, "code": e.code, "details": map[string]any{"text": e.text}}
	return map[string]any{"resourceType": "OperationOutcome", "issue": []any{issue}}
}

func (c *call) fail(e *apiError)       { writeJSON(c.w, e.status, outcomeOf(e)) }
func (c *call) json(status int, v any) { writeJSON(c.w, status, v) }

// writeJSON writes v as compact JSON like DRF's JSONRenderer; a
// json.RawMessage is written as it is.
func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, ok := v.(json.RawMessage)
	if !ok {
		raw = mustMarshal(v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// writeDjango404 is Django's 404 page (text/html), the answer to any path no
// route matches, QuestionnaireResponse/ included (trap 12).
func writeDjango404(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>Page not found at %s</title></head>\n"+
		"<body><h1>Page not found <span>(404)</span></h1><p>The current path, <code>%s</code>, didn't match any of these.</p></body></html>\n",
		html.EscapeString(r.URL.Path), html.EscapeString(strings.TrimPrefix(r.URL.Path, "/")))
}

// mustMarshal encodes v as compact JSON without HTML escaping.
func mustMarshal(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("openimistest: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// baseURL is scheme://host as Django sees the request (§6: links follow it).
func baseURL(r *http.Request) string { return "http://" + r.Host }
