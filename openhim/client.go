// Package openhim is a thin client of the OpenHIM core API for a mediator:
// registration and heartbeat. Section numbers in comments refer to the
// OpenHIM contract note (docs/upstreams/openhim.md).
//
// It authenticates with HTTP Basic (the email lower-cased,
// docs/upstreams/openhim.md §2.2) and falls back to the legacy token scheme of
// cores up to 7.0 (docs/upstreams/openhim.md §2.3) when Basic is refused. It
// does not log and does not retry.
package openhim

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
	"github.com/cht-openimis/cht-openimis-mediator/internal/httpc"
)

// Options configures a Client.
type Options struct {
	// APIURL is the core API's base URL, e.g. https://openhim-core:8080.
	APIURL string
	// Username is the API user's email; Password its password. The user must
	// be in the admin group (docs/upstreams/openhim.md §2.5).
	Username, Password string
	// TrustSelfSigned skips TLS certificate verification, for the core's
	// default self-signed certificate (docs/upstreams/openhim.md §1, trap 10). It applies to the
	// default transport only; see [NewTransport].
	TrustSelfSigned bool
	// Timeout bounds every request. Defaults to 10 seconds.
	Timeout time.Duration
	// Transport replaces the HTTP transport: tests, or a wrapper (metrics)
	// around [NewTransport]. TrustSelfSigned does not apply to it.
	Transport http.RoundTripper
	// Now is the clock used for token timestamps. Defaults to time.Now.
	Now func() time.Time
}

// Client talks to one OpenHIM core as one API user. It is safe for
// concurrent use.
type Client struct {
	now      func() time.Time
	password string
	rc       *resty.Client
	username string

	mu    sync.Mutex
	token *tokenUser // set once Basic was refused and the token scheme works
}

// New returns a Client. It does not contact the core.
func New(opts Options) (*Client, error) {
	if _, ok := httpc.ParseBase(opts.APIURL); !ok {
		return nil, fmt.Errorf("openhim: API URL %q must be an absolute http(s) URL", opts.APIURL)
	}
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("openhim: username and password are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Transport == nil {
		opts.Transport = NewTransport(opts.TrustSelfSigned)
	}
	rc := httpc.NewResty(httpc.Options{BaseURL: opts.APIURL, BodyLimit: 1 << 20, Transport: opts.Transport}).
		SetTimeout(opts.Timeout)
	return &Client{
		now:      opts.Now,
		password: opts.Password,
		rc:       rc,
		username: strings.ToLower(opts.Username),
	}, nil
}

// NewTransport returns the client's default transport: Go's default,
// without certificate verification when trustSelfSigned is set.
func NewTransport(trustSelfSigned bool) *http.Transport {
	t := &http.Transport{Proxy: http.ProxyFromEnvironment}
	if d, ok := http.DefaultTransport.(*http.Transport); ok {
		t = d.Clone()
	}
	if trustSelfSigned {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the operator's explicit choice, logged at startup
	}
	return t
}

// APIError is a non-2xx answer from the core.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

// Error implements error.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("openhim %s %s: %d: %s", e.Method, e.Path, e.Status, msg)
}

// do sends a JSON request with the current authentication. A 401 to Basic
// switches to the token scheme once, for cores that have only that
// (docs/upstreams/openhim.md trap 7).
func (c *Client) do(ctx context.Context, method, path string, body any) (*resty.Response, error) {
	for attempt := 0; ; attempt++ {
		req := c.rc.R().SetContext(ctx).SetHeader("Content-Type", "application/json").SetHeader("Accept", "application/json")
		if body != nil {
			req.SetBody(body)
		}
		token := c.tokenUser()
		if token != nil {
			for k, v := range token.headers(c.now()) {
				req.SetHeader(k, v)
			}
		} else {
			req.SetBasicAuth(c.username, c.password)
		}
		resp, err := req.Execute(method, path)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("openhim %s %s: %w", method, path, err)
		}
		if resp.StatusCode() == http.StatusUnauthorized && token == nil && attempt == 0 {
			if terr := c.useToken(ctx); terr == nil {
				continue
			}
		}
		if resp.StatusCode() < 200 || resp.StatusCode() > 299 {
			msg := errtext.Body(resp.Body(), 200)
			return resp, &APIError{Method: method, Path: path, Status: resp.StatusCode(), Message: msg}
		}
		return resp, nil
	}
}

func (c *Client) tokenUser() *tokenUser {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// useToken fetches the user's salt (GET /authenticate/<email>, docs/upstreams/openhim.md §2.3) and
// switches to the token scheme. It fails for users without a token passport.
func (c *Client) useToken(ctx context.Context) error {
	resp, err := c.rc.R().SetContext(ctx).SetHeader("Accept", "application/json").
		Get("/authenticate/" + url.PathEscape(c.username))
	if err != nil || resp.StatusCode() != http.StatusOK {
		return errors.New("openhim: token authentication unavailable")
	}
	var salt struct {
		Salt string `json:"salt"`
	}
	if err := json.Unmarshal(resp.Body(), &salt); err != nil || salt.Salt == "" {
		return errors.New("openhim: token authentication unavailable")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = &tokenUser{username: c.username, passhash: PassHash(salt.Salt, c.password)}
	return nil
}

// tokenUser signs requests with the legacy token scheme.
type tokenUser struct {
	passhash string
	username string
}

// headers returns the four auth-* headers for a request sent at now: a
// fresh random salt and an ISO-8601 UTC timestamp (docs/upstreams/openhim.md §2.3, trap 8).
func (t *tokenUser) headers(now time.Time) map[string]string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	salt := hex.EncodeToString(b[:])
	ts := now.UTC().Format("2006-01-02T15:04:05.000Z")
	return map[string]string{
		"auth-username": t.username,
		"auth-ts":       ts,
		"auth-salt":     salt,
		"auth-token":    sha512Hex(t.passhash + salt + ts),
	}
}

// PassHash is the token scheme's password hash: lower-case hex
// SHA-512(salt ‖ password).
func PassHash(salt, password string) string {
	return sha512Hex(salt + password)
}

func sha512Hex(s string) string {
	sum := sha512.Sum512([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Register posts the mediator's registration document: POST /mediators
// (docs/upstreams/openhim.md §1). Core answers 201 also when it keeps an
// existing registration of the same or a higher version
// (docs/upstreams/openhim.md trap 1).
func (c *Client) Register(ctx context.Context, doc json.RawMessage) error {
	_, err := c.do(ctx, http.MethodPost, "/mediators", doc)
	return err
}

// Heartbeat reports the mediator alive: POST /mediators/<urn>/heartbeat
// with the process uptime in seconds (docs/upstreams/openhim.md §3). With forceConfig, or when the
// config changed since the last heartbeat, core answers the whole stored
// config, which Heartbeat returns; otherwise it returns nil (docs/upstreams/openhim.md trap 5).
func (c *Client) Heartbeat(ctx context.Context, urn string, uptime time.Duration, forceConfig bool) (map[string]any, error) {
	body := map[string]any{"uptime": uptime.Seconds()}
	if forceConfig {
		body["config"] = true
	}
	resp, err := c.do(ctx, http.MethodPost, "/mediators/"+url.PathEscape(urn)+"/heartbeat", body)
	if err != nil {
		return nil, err
	}
	raw := strings.TrimSpace(string(resp.Body()))
	if raw == "" || raw == "OK" {
		return nil, nil
	}
	var config map[string]any
	if err := json.Unmarshal([]byte(raw), &config); err != nil {
		return nil, fmt.Errorf("openhim heartbeat: config is not a JSON object: %w", err)
	}
	return config, nil
}

// Registered is what core keeps of a registered mediator.
type Registered struct {
	Version   string     `json:"version"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is where core reaches a mediator.
type Endpoint struct {
	Name    string  `json:"name"`
	Host    string  `json:"host"`
	Port    float64 `json:"port"`
	Path    string  `json:"path"`
	Secured bool    `json:"secured"`
}

// String is the endpoint as a URL.
func (e Endpoint) String() string {
	scheme := "http"
	if e.Secured {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s:%d%s", scheme, e.Host, int(e.Port), e.Path)
}

// Registration reads what core keeps for urn: GET /mediators/<urn>.
func (c *Client) Registration(ctx context.Context, urn string) (Registered, error) {
	var r Registered
	resp, err := c.do(ctx, http.MethodGet, "/mediators/"+url.PathEscape(urn), nil)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(resp.Body(), &r); err != nil {
		return r, fmt.Errorf("openhim GET /mediators/%s: %w", urn, err)
	}
	return r, nil
}

// Mediators lists the registered mediators' urns: GET /mediators. It is how
// a preflight check proves the credentials and the admin group (docs/upstreams/openhim.md §2.5).
func (c *Client) Mediators(ctx context.Context) ([]string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/mediators", nil)
	if err != nil {
		return nil, err
	}
	var list []struct {
		URN string `json:"urn"`
	}
	if err := json.Unmarshal(resp.Body(), &list); err != nil {
		return nil, fmt.Errorf("openhim GET /mediators: %w", err)
	}
	urns := make([]string, len(list))
	for i, m := range list {
		urns[i] = m.URN
	}
	return urns, nil
}

// SetConfig replaces the config core stores for urn: PUT
// /mediators/<urn>/config, what the console's editor sends
// (docs/upstreams/openhim.md §3). Core checks it against the configDefs,
// stores it whole (keys left out disappear, trap 23) and returns it in the
// answer to the next heartbeat.
func (c *Client) SetConfig(ctx context.Context, urn string, config map[string]any) error {
	_, err := c.do(ctx, http.MethodPut, "/mediators/"+url.PathEscape(urn)+"/config", config)
	return err
}

// Channel is an installed channel as GET /channels answers it
// (docs/upstreams/openhim.md §5).
type Channel struct {
	Name       string  `json:"name"`
	URLPattern string  `json:"urlPattern"`
	Status     string  `json:"status"`
	Routes     []Route `json:"routes"`
}

// Route is one route of a channel. Username and Password, when set, are the
// Basic credentials core sends to the route's host (§4.1).
type Route struct {
	Name              string  `json:"name"`
	Host              string  `json:"host"`
	Port              float64 `json:"port"`
	Path              string  `json:"path"`
	Secured           bool    `json:"secured"`
	Primary           bool    `json:"primary"`
	Status            string  `json:"status"`
	Username          string  `json:"username"`
	Password          string  `json:"password"`
	ForwardAuthHeader bool    `json:"forwardAuthHeader"`
}

// Channels lists the installed channels: GET /channels. Core answers an
// admin every channel, with the routes' credentials in clear.
func (c *Client) Channels(ctx context.Context) ([]Channel, error) {
	resp, err := c.do(ctx, http.MethodGet, "/channels", nil)
	if err != nil {
		return nil, err
	}
	var list []Channel
	if err := json.Unmarshal(resp.Body(), &list); err != nil {
		return nil, fmt.Errorf("openhim GET /channels: %w", err)
	}
	return list, nil
}
