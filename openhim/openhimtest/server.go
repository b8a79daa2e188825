package openhimtest

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/internal/upstreamtest"
)

const (
	// RootEmail and RootPassword are the user core creates at first start
	// (src/server.js), in the admin group with both passports.
	RootEmail    = "root@openhim.org"
	RootPassword = "openhim-password"
	// RootSalt is the salt of the root user's token passport.
	RootSalt = "d9bcb40e-ae65-478f-962e-5e5e5e7d0a01"

	// authWindow is api.authWindowSeconds (config/default.json).
	authWindow = 10 * time.Second
	// maxBody is api.maxPayloadSizeMB (50 in config/default.json).
	maxBody = 50 << 20
)

// Request is one request the API received, recorded before any fault.
type Request = upstreamtest.Request

// Options configures a Server. The zero value is a core 7.1+/8.x API with
// the root user, Basic and token authentication, and the real clock.
type Options struct {
	// DisableBasic turns HTTP Basic off, as in cores ≤ 7.0 whose
	// api.authenticationTypes is ["token"] (docs/upstreams/openhim.md §2.1,
	// trap 7): Basic gets 401, so a client's fallback can be tested.
	DisableBasic bool
	// Now is the server clock (token window, heartbeat and config times).
	// Defaults to time.Now. Core stores dates to the millisecond, and so
	// does the fake.
	Now func() time.Time
}

// User is an API user.
type User struct {
	// Email is the login: Basic matches it exactly, the token scheme
	// ignoring case (§2.2, §2.3).
	Email    string
	Password string
	// Groups are the user's groups: /mediators* needs "admin" (§2.5).
	Groups []string
	// Salt is the token passport's salt. Empty means no token passport, as
	// for v8 users created with a plain password: GET /authenticate/{email}
	// answers 404 and only Basic works (trap 7).
	Salt string
}

// Server is a fake OpenHIM core. Recorder and Faults are its request log
// and injected faults; an injected status answers with Koa's status text.
type Server struct {
	// URL is the API's base URL, https://127.0.0.1:port.
	URL string
	upstreamtest.Recorder
	*upstreamtest.Faults

	opts Options
	srv  *httptest.Server

	mu            sync.Mutex
	users         []User
	mediators     []*mediator
	registrations []Registration
	heartbeats    []Heartbeat
	channels      []map[string]any
	transactions  []Transaction
}

// New starts a fake core on 127.0.0.1 over TLS. Call Close when done;
// tests use NewServer.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, Faults: upstreamtest.NewFaults(0), users: []User{{
		Email: RootEmail, Password: RootPassword, Groups: []string{"admin"}, Salt: RootSalt,
	}}}
	s.srv = httptest.NewTLSServer(s)
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

// Close stops the fake and waits for requests in flight.
func (s *Server) Close() {
	s.Faults.Close()
	s.srv.Close()
}

// Client returns an HTTP client that trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// AddUser adds an API user.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = append(s.users, u)
}

func (s *Server) now() time.Time { return s.opts.Now().UTC().Truncate(time.Millisecond) }

// answer is a Koa response: a status without a body sends the status text.
type answer struct {
	status int
	ctype  string
	body   []byte
}

// text is a text/plain answer; an empty msg is the status text, as Koa
// sends for a status set without a body (koa lib/application.js respond).
func text(status int, msg string) answer {
	if msg == "" {
		msg = http.StatusText(status)
	}
	return answer{status, "text/plain; charset=utf-8", []byte(msg)}
}

func jsonAnswer(v any) answer {
	b, _ := json.Marshal(v)
	return answer{http.StatusOK, "application/json; charset=utf-8", b}
}

// request is one API request in flight: its parsed body and user.
type request struct {
	r    *http.Request
	raw  []byte
	body map[string]any
	user *User
}

// ServeHTTP serves the API: record, faults, body parser, authentication,
// then the routes (src/koaApi.js).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	raw, _ := s.Record(r, maxBody, s.now())
	status := s.Down()
	if status == 0 {
		status = s.TakeFail(r.URL.Path)
	}
	a := text(status, "")
	if status == 0 {
		a = s.handle(&request{r: r, raw: raw})
	}
	s.Delay(r.Context(), arrived)
	if s.TakeDrop(r.URL.Path) {
		upstreamtest.DropConnection(w)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

var routes = []struct {
	method, pattern, name string // name: core's handler, in its 403 text
	handle                func(*Server, *request, string) answer
}{
	{http.MethodGet, "/mediators", "getAllMediators", (*Server).getMediators},
	{http.MethodPost, "/mediators", "addMediator", (*Server).addMediator},
	{http.MethodGet, "/mediators/*", "getMediator", (*Server).getMediator},
	{http.MethodPost, "/mediators/*/heartbeat", "removeMediator", (*Server).heartbeat},
	{http.MethodPut, "/mediators/*/config", "removeMediator", (*Server).putConfig},
	{http.MethodPost, "/mediators/*/channels", "addChannelsToMediator", (*Server).installChannels},
	{http.MethodGet, "/channels", "getChannels", (*Server).getChannels},
}

// handle runs koa-bodyparser, the public route, authentication and the
// routes. Only an application/json body is parsed: any other reads as {}
// (docs/upstreams/openhim.md trap 3); invalid JSON gets 400.
func (s *Server) handle(x *request) answer {
	x.body = map[string]any{}
	if mt, _, _ := mime.ParseMediaType(x.r.Header.Get("Content-Type")); mt == "application/json" && len(bytes.TrimSpace(x.raw)) > 0 {
		var v any
		if json.Unmarshal(x.raw, &v) != nil {
			return text(http.StatusBadRequest, "")
		}
		if m, ok := v.(map[string]any); ok {
			x.body = m
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if email, ok := strings.CutPrefix(x.r.URL.Path, "/authenticate/"); ok && x.r.Method == http.MethodGet {
		return s.getAuthenticate(email)
	}
	if x.user = s.authenticate(x.r.Header); x.user == nil {
		return text(http.StatusUnauthorized, "")
	}
	for _, rt := range routes {
		if urn, ok := match(x.r.URL.Path, rt.pattern); ok && rt.method == x.r.Method {
			if !slices.Contains(x.user.Groups, "admin") {
				// Every /mediators route, core ≤ 8.5.0 (src/api/mediators.js,
				// §2.5, trap 9). The heartbeat and config routes name
				// removeMediator, as core does.
				return text(http.StatusForbidden, "User "+x.user.Email+" is not an admin, API access to "+rt.name+" denied.")
			}
			return rt.handle(s, x, urn)
		}
	}
	return text(http.StatusNotFound, "")
}

// match matches a decoded path against a pattern whose "*" segment, if
// any, is the urn.
func match(path, pattern string) (string, bool) {
	before, after, param := strings.Cut(pattern, "*")
	if rest, ok := strings.CutPrefix(path, before); ok && param {
		urn, ok := strings.CutSuffix(rest, after)
		return urn, ok && urn != "" && !strings.Contains(urn, "/")
	}
	return "", path == pattern
}

// authenticate is core's authenticateRequest (src/api/authentication.js):
// when any token header is present only the token scheme is tried, otherwise
// Basic (docs/upstreams/openhim.md trap 7). Nil means 401. The caller holds
// s.mu.
func (s *Server) authenticate(h http.Header) *User {
	if h.Get("auth-username") != "" || h.Get("auth-ts") != "" || h.Get("auth-salt") != "" || h.Get("auth-token") != "" {
		return s.tokenUser(h)
	}
	r := http.Request{Header: h}
	email, password, ok := r.BasicAuth()
	if !ok || s.opts.DisableBasic {
		return nil
	}
	// src/protocols/local.js: the email matches exactly (§2.2).
	for i, u := range s.users {
		if u.Email == email && u.Password == password {
			return &s.users[i]
		}
	}
	return nil
}

// tokenUser is the legacy token strategy (src/protocols/token.js,
// docs/upstreams/openhim.md §2.3): auth-ts within ±10 s of the server clock,
// the user found ignoring case with a token passport, and auth-token =
// sha512hex(PassHash(salt, password) ‖ auth-salt ‖ auth-ts) over the header
// strings. Core reads auth-ts with Date.parse; the fake takes ISO-8601 with
// a zone only (trap 8).
func (s *Server) tokenUser(h http.Header) *User {
	ts, salt := h.Get("auth-ts"), h.Get("auth-salt")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || t.Sub(s.now()).Abs() > authWindow || salt == "" {
		return nil
	}
	u := s.userFold(h.Get("auth-username"))
	if u == nil || u.Salt == "" || h.Get("auth-token") != sha512Hex(PassHash(u.Salt, u.Password)+salt+ts) {
		return nil
	}
	return u
}

// userFold finds a user by email ignoring case, as core's token lookups do.
func (s *Server) userFold(email string) *User {
	for i, u := range s.users {
		if strings.EqualFold(u.Email, email) {
			return &s.users[i]
		}
	}
	return nil
}

// getAuthenticate is GET /authenticate/:username (src/api/users.js
// authenticateToken), which needs no credentials: the user's salt and the
// server time, or 404 for an unknown user or one without a token passport
// (docs/upstreams/openhim.md §2.3, trap 7).
func (s *Server) getAuthenticate(email string) answer {
	u := s.userFold(email)
	if u == nil || u.Salt == "" {
		return text(http.StatusNotFound, "Could not find user by email "+email)
	}
	return jsonAnswer(map[string]string{"salt": u.Salt, "ts": s.now().Format("2006-01-02T15:04:05.000Z")})
}

// PassHash is a token passport's hash: lower-case hex SHA-512(salt ‖
// password).
func PassHash(salt, password string) string { return sha512Hex(salt + password) }

func sha512Hex(s string) string {
	sum := sha512.Sum512([]byte(s))
	return hex.EncodeToString(sum[:])
}
