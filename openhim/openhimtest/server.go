package openhimtest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// maxPayloadBytes is core's JSON body limit (api.maxPayloadSizeMB, 50 in
// config/default.json).
const maxPayloadBytes = 50 << 20

// Options configures a Server. The zero value is a core 7.1+/8.x API
// serving HTTPS with the root user only, Basic and token authentication
// enabled, a ±10 s token window and the real clock.
type Options struct {
	// AuthWindow is api.authWindowSeconds: how far auth-ts may be from the
	// server clock, in both directions. Defaults to DefaultAuthWindow; a
	// negative value means zero.
	AuthWindow time.Duration
	// DisableBasic turns HTTP Basic off, as in cores ≤ 7.0 (default
	// api.authenticationTypes ["token"]) or a core configured without
	// "basic": a Basic request then gets 401, so a client's fallback to the
	// token scheme can be tested.
	DisableBasic bool
	// DisableToken turns the legacy token scheme off, as in a core whose
	// api.authenticationTypes lacks "token". GET /authenticate/{email}
	// still answers, as in core.
	DisableToken bool
	// Now is the server clock: the token window, GET /authenticate's ts,
	// _lastHeartbeat, _configModifiedTS and record times. Defaults to
	// time.Now. Core stores dates with millisecond precision, and so does
	// the fake.
	Now func() time.Time
	// PlainHTTP serves the API over plain HTTP (api.protocol "http")
	// instead of HTTPS with a self-signed certificate.
	PlainHTTP bool
	// Users are the API users. Nil means RootUser() alone; an empty non-nil
	// slice means no users at all.
	Users []User
}

// Server is a fake OpenHIM core: the management API, served over HTTPS by
// New and NewServer, and the router, as Server.Forward. Its exported
// methods are safe for concurrent use.
type Server struct {
	// URL is the API's base URL, e.g. https://127.0.0.1:41234, without a
	// trailing slash. It is empty for a Server from NewHandler.
	URL string

	opts       Options
	now        func() time.Time
	authWindow time.Duration
	srv        *httptest.Server
	closeOnce  sync.Once

	mu            sync.Mutex
	users         []*user
	mediators     []*mediatorRec
	channels      []*channelRec
	requests      []Request
	registrations []Registration
	heartbeats    []Heartbeat
	transactions  []Transaction
	failRules     []*faultRule
	dropRules     []*faultRule
	down          int
}

// New starts a fake OpenHIM API on 127.0.0.1 with a random port, over TLS
// with httptest's self-signed certificate unless Options.PlainHTTP is set.
// Call Close when done; tests should prefer NewServer.
func New(opts Options) *Server {
	s := NewHandler(opts)
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.Config.ErrorLog = log.New(quietHandshakes{}, "", log.LstdFlags)
	if opts.PlainHTTP {
		s.srv.Start()
	} else {
		s.srv.StartTLS()
	}
	s.URL = s.srv.URL
	return s
}

// quietHandshakes drops the "TLS handshake error" lines a client that does
// not trust the certificate causes (tests of that case are expected), and
// passes the rest to the standard logger.
type quietHandshakes struct{}

func (quietHandshakes) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("TLS handshake error")) {
		return len(p), nil
	}
	return log.Writer().Write(p)
}

// NewServer is New plus tb.Cleanup(s.Close).
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	tb.Cleanup(s.Close)
	return s
}

// NewHandler returns a fake OpenHIM that is not listening anywhere, for
// mounting on a listener of the caller's choice (a sandbox demo). Its URL is
// empty; Forward works as usual.
func NewHandler(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	window := opts.AuthWindow
	switch {
	case window == 0:
		window = DefaultAuthWindow
	case window < 0:
		window = 0
	}
	users := opts.Users
	if users == nil {
		users = []User{RootUser()}
	}
	s := &Server{opts: opts, now: func() time.Time { return opts.Now().UTC().Truncate(time.Millisecond) }, authWindow: window}
	for _, u := range users {
		s.AddUser(u)
	}
	return s
}

// AddUser adds an API user, after those already there (lookups take the
// first match).
func (s *Server) AddUser(u User) {
	u.Groups = append([]string(nil), u.Groups...)
	if u.Firstname == "" {
		u.Firstname = "Test"
	}
	if u.Surname == "" {
		u.Surname = "User"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = append(s.users, &user{User: u, id: newObjectID()})
}

// Close stops the fake and waits for requests in flight. It can be called
// more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.srv != nil {
			s.srv.Close()
		}
	})
}

// Client returns an HTTP client that trusts the fake's certificate, as
// httptest.Server.Client does, or http.DefaultClient for a Server from
// NewHandler. It sends no credentials by itself.
func (s *Server) Client() *http.Client {
	if s.srv == nil {
		return http.DefaultClient
	}
	return s.srv.Client()
}

// Certificate returns the API's TLS certificate (httptest's self-signed
// certificate for 127.0.0.1 and example.com), or nil without TLS.
func (s *Server) Certificate() *x509.Certificate {
	if s.srv == nil || s.srv.TLS == nil {
		return nil
	}
	return s.srv.Certificate()
}

// CertificatePEM returns Certificate PEM-encoded, for tests of a client
// configured with a CA file, or nil without TLS.
func (s *Server) CertificatePEM() []byte {
	c := s.Certificate()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Request is one request the API received, recorded before anything else
// happened to it (including requests answered by injected faults).
type Request struct {
	// Body is the request body as received (at most 50 MiB + 1 byte).
	Body []byte
	// Header is a copy of the request headers.
	Header http.Header
	// Method is the HTTP method.
	Method string
	// Path is the decoded URL path.
	Path string
	// RawQuery is the encoded query, without "?".
	RawQuery string
	// Time is the server clock's time of arrival.
	Time time.Time
}

// Requests returns a copy of every request the API received, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// exchange is one API request in flight.
type exchange struct {
	r    *http.Request
	raw  []byte
	body *jsValue
	user *user
}

// ServeHTTP implements http.Handler for the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, maxPayloadBytes+1))
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Body:     bytes.Clone(raw),
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
	s.mu.Unlock()

	var resp *koaResponse
	drop := false
	if fault != 0 {
		resp = statusResponse(fault)
	} else {
		resp = s.handle(&exchange{r: r, raw: raw})
		s.mu.Lock()
		drop = takeRule(&s.dropRules, r.URL.Path) != 0
		s.mu.Unlock()
	}
	if drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	status, header, body := resp.finish(r.Method)
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Vary", "Origin")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// handle runs the request through core's API middleware: body parser,
// public routes, authentication, then the routes.
func (s *Server) handle(x *exchange) *koaResponse {
	if resp := x.parseBody(); resp != nil {
		return resp
	}
	path := rawPath(x.r)
	method := x.r.Method

	s.mu.Lock()
	defer s.mu.Unlock()

	if resp := s.publicRoute(method, path); resp != nil {
		return resp
	}
	x.user = s.authenticate(x.r)
	if x.user == nil {
		// Core sets the status but no body.
		return statusResponse(http.StatusUnauthorized)
	}
	if resp := s.mediatorRoute(x, method, path); resp != nil {
		return resp
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if unmodelledRoutes[strings.ToLower(seg)] {
		return notModelled(method, path)
	}
	return statusResponse(http.StatusNotFound)
}

// unmodelledRoutes are the first path segments of core API routes behind
// authentication that the fake does not serve (src/koaApi.js).
var unmodelledRoutes = map[string]bool{
	"authentication": true, "logout": true, "apps": true, "users": true, "clients": true, "roles": true,
	"transactions": true, "bulkrerun": true, "groups": true, "channels": true, "tasks": true, "metrics": true,
	"keystore": true, "metadata": true, "restart": true, "audits": true, "audits-filter-options": true,
	"certificates": true, "logs": true, "events": true, "about": true, "visualizers": true,
}

// notModelled answers a core route the fake does not serve, so a test never
// mistakes it for core's behaviour.
func notModelled(method, path string) *koaResponse {
	return textResponse(http.StatusNotImplemented, "openhimtest: "+method+" "+path+" is not modelled by the fake")
}

// publicRoute serves the routes core mounts before authentication. The
// caller holds s.mu.
func (s *Server) publicRoute(method, path string) *koaResponse {
	get := method == http.MethodGet || method == http.MethodHead
	if params, ok := matchRoute(path, "authenticate", ":username"); ok && get {
		email, err := routeParam(params[0])
		if err != nil {
			return internalError()
		}
		return s.getAuthenticate(email)
	}
	for _, p := range [][]string{{"heartbeat"}, {"me"}, {"importmaps"}, {"apps"}, {"password-reset-request", ":email"}, {"token", ":token"}} {
		if _, ok := matchRoute(path, p...); ok && (get || (p[0] == "token" && method == http.MethodPut)) {
			return notModelled(method, path)
		}
	}
	for _, p := range []string{"local", "openid"} {
		if _, ok := matchRoute(path, "authenticate", p); ok && method == http.MethodPost {
			return notModelled(method, path)
		}
	}
	return nil
}

// internalError is Koa's answer to an uncaught exception.
func internalError() *koaResponse {
	return statusResponse(http.StatusInternalServerError)
}

// rawPath is Koa's ctx.path: the path as sent, not decoded.
func rawPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// matchRoute matches a raw path against a koa-route pattern as
// path-to-regexp 1.x compiles it (case-insensitive, one optional trailing
// slash, ":name" a non-empty segment). It returns the raw parameters.
func matchRoute(path string, pattern ...string) ([]string, bool) {
	if !strings.HasPrefix(path, "/") {
		return nil, false
	}
	segs := strings.Split(path[1:], "/")
	if len(segs) == len(pattern)+1 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	if len(segs) != len(pattern) {
		return nil, false
	}
	var params []string
	for i, p := range pattern {
		if strings.HasPrefix(p, ":") {
			if segs[i] == "" {
				return nil, false
			}
			params = append(params, segs[i])
			continue
		}
		if !strings.EqualFold(segs[i], p) {
			return nil, false
		}
	}
	return params, true
}

// routeParam decodes a route parameter as koa-route (decodeURIComponent)
// and then core's handler (unescape) do.
func routeParam(raw string) (string, error) {
	d, err := url.PathUnescape(raw)
	if err != nil || !utf8.ValidString(d) {
		return "", errors.New("URIError: URI malformed")
	}
	return jsUnescape(d), nil
}

var unescapeRE = regexp.MustCompile(`%u[0-9a-fA-F]{4}|%[0-9a-fA-F]{2}`)

// jsUnescape is JavaScript's unescape: %XX and %uXXXX become the code unit.
func jsUnescape(s string) string {
	return unescapeRE.ReplaceAllStringFunc(s, func(m string) string {
		digits := strings.TrimPrefix(m[1:], "u")
		n, _ := strconv.ParseUint(digits, 16, 32)
		return string(rune(n))
	})
}

// jsonTypes are koa-bodyparser's JSON media types.
var jsonTypes = map[string]bool{
	"application/json":            true,
	"application/json-patch+json": true,
	"application/vnd.api+json":    true,
	"application/csp-report":      true,
	"application/scim+json":       true,
}

var strictJSONStart = regexp.MustCompile(`^[\x20\x09\x0a\x0d]*[\[{]`)

// parseBody is koa-bodyparser: a JSON body (strict: object or array only)
// or a form body becomes ctx.request.body; anything else leaves {}. It
// returns the error answer for a body it cannot parse.
func (x *exchange) parseBody() *koaResponse {
	x.body = newObject()
	mt, _, err := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	if err != nil {
		return nil
	}
	switch {
	case jsonTypes[mt]:
		if len(x.raw) > maxPayloadBytes {
			return textResponse(http.StatusRequestEntityTooLarge, "request entity too large")
		}
		str := strings.TrimPrefix(string(x.raw), "\ufeff")
		if str == "" {
			return nil
		}
		if !strictJSONStart.MatchString(str) {
			return statusResponse(http.StatusBadRequest)
		}
		v, err := parseJSON([]byte(str))
		if err != nil {
			return statusResponse(http.StatusBadRequest)
		}
		x.body = v
	case mt == "application/x-www-form-urlencoded":
		x.body = parseForm(string(x.raw))
	}
	return nil
}

// parseForm is qs.parse without its bracket syntax: repeated keys give
// arrays.
func parseForm(s string) *jsValue {
	out := newObject()
	for _, pair := range strings.Split(s, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			continue
		}
		switch prev := out.obj.get(k); {
		case prev == nil:
			out.obj.set(k, jsStr(v))
		case prev.isArray():
			prev.arr = append(prev.arr, jsStr(v))
		default:
			out.obj.set(k, jsArr(prev, jsStr(v)))
		}
	}
	return out
}
