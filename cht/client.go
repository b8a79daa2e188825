// Package cht is a typed client for the parts of the Community Health Toolkit
// API the mediator uses: creating and finding persons, posting JSON-form
// reports and finding reports. Section numbers in comments refer to the CHT
// contract note (docs/upstreams/cht.md).
//
// The client is thin and quiet: one method per endpoint, no logging, no
// retries. Non-2xx answers come back as *APIError; the caller decides what is
// worth retrying.
package cht

import (
	"cmp"
	"context"
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
	"github.com/cht-openimis/cht-openimis-mediator/internal/fastjson"
	"github.com/cht-openimis/cht-openimis-mediator/internal/httpc"
	"github.com/cht-openimis/cht-openimis-mediator/internal/retryafter"
)

// maxResponseBody bounds what the client reads of any answer.
const maxResponseBody = 8 << 20

// Options configures a Client.
type Options struct {
	// URL is the CHT's base URL, e.g. https://cht.example.org.
	URL string
	// Username and Password are the integration user's credentials. The user
	// needs an online role (docs/upstreams/cht.md §6).
	Username, Password string
	// Timeout bounds every request. Defaults to 30 seconds.
	Timeout time.Duration
	// Transport replaces the HTTP transport (tests, TLS settings).
	Transport http.RoundTripper
	// AuthCooldown is how long the client sends nothing after a 401 or 429.
	// The CHT locks a user out after ten such answers in ten seconds, and
	// every request during the lock-out extends it (docs/upstreams/cht.md trap 14). Defaults to
	// 10 seconds; it doubles while the answers repeat, up to MaxPause. A
	// longer Retry-After is honoured, up to MaxPause too.
	AuthCooldown time.Duration
	// Now is the clock of the cool-down. Defaults to time.Now.
	Now func() time.Time
}

// MaxPause bounds every pause of the client: its own doubling cool-down and
// a server's Retry-After, however long (a proxy may send any number).
const MaxPause = 5 * time.Minute

// ErrCoolingDown is returned, wrapped in a *PauseError, without contacting
// the CHT while the client pauses after a 401 or 429.
var ErrCoolingDown = errors.New("cht: paused")

// PauseError is the answer to a request made while the client pauses: the
// CHT was not contacted. It says why (the answer that started the pause) and
// for how long; a job waits that long without using an attempt.
type PauseError struct {
	// Left is how long the client still sends nothing.
	Left time.Duration
	// Cause is the answer that started the pause.
	Cause *APIError
}

// Error implements error, worded by cause: a 429 is not a refused login.
func (e *PauseError) Error() string {
	return fmt.Sprintf("%v %s, %s left: %v", ErrCoolingDown, e.why(), e.Left.Round(time.Millisecond), e.Cause)
}

// why names the answer that started the pause.
func (e *PauseError) why() string {
	if e.Cause.Status == http.StatusUnauthorized {
		return "after a refused login (401)"
	}
	why := fmt.Sprintf("after %d %s", e.Cause.Status, http.StatusText(e.Cause.Status))
	if e.Cause.RetryAfter > 0 {
		why += fmt.Sprintf(" (Retry-After %s)", e.Cause.RetryAfter)
	}
	return why
}

// Unwrap gives ErrCoolingDown and the answer that started the pause.
func (e *PauseError) Unwrap() []error { return []error{ErrCoolingDown, e.Cause} }

// RetryAfterDuration is how long to wait before trying again.
func (e *PauseError) RetryAfterDuration() time.Duration { return e.Left }

// Client talks to one CHT instance as one user. It is safe for concurrent use.
type Client struct {
	cooldown time.Duration
	now      func() time.Time
	rc       *resty.Client
	timeout  httpc.Timeout

	mu         sync.Mutex
	pauseUntil time.Time
	pauseFor   time.Duration
	pauseCause *APIError
}

// New returns a Client. It does not contact the server.
func New(opts Options) (*Client, error) {
	if _, ok := httpc.ParseBase(opts.URL); !ok {
		return nil, fmt.Errorf("cht: URL %q must be an absolute http(s) URL", opts.URL)
	}
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("cht: username and password are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.AuthCooldown <= 0 {
		opts.AuthCooldown = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Without Accept: application/json, errors come back as text
	// (docs/upstreams/cht.md §1). http:// in front of CHT's nginx answers
	// 301; a POST re-sent as GET would be lost (trap 15): NewResty never
	// follows a redirect.
	rc := httpc.NewResty(httpc.Options{
		BaseURL: opts.URL, Accept: "application/json", BodyLimit: maxResponseBody, Transport: opts.Transport,
	}).
		// Pre-emptive Basic auth: Go never answers a 401 challenge, and some
		// CouchDB configurations answer an anonymous request with 500 (docs/upstreams/cht.md §6).
		SetBasicAuth(opts.Username, opts.Password)
	c := &Client{rc: rc, cooldown: opts.AuthCooldown, now: opts.Now}
	c.SetTimeout(opts.Timeout)
	return c, nil
}

// SetTimeout changes the bound of every request from now on; it is how
// runtime configuration reaches the client. Non-positive values are ignored.
func (c *Client) SetTimeout(d time.Duration) {
	c.timeout.Set(d)
}

// do sends a request and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	if err := c.cooling(); err != nil {
		return err
	}
	ctx, cancel := c.timeout.Bound(ctx)
	defer cancel()
	req := c.rc.R().SetContext(ctx)
	if query != nil {
		req.SetQueryParamsFromValues(query)
	}
	if body != nil {
		// Exactly application/json: /api/v1/people refuses a charset
		// (docs/upstreams/cht.md trap 13).
		req.SetHeader("Content-Type", "application/json").SetBody(body)
	}
	resp, err := req.Execute(method, path)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cht %s %s: %w", method, path, err)
	}
	if resp.StatusCode() < 200 || resp.StatusCode() > 299 {
		ae := newAPIError(method, path, resp, c.now())
		if ae.Status == http.StatusUnauthorized || ae.Status == http.StatusTooManyRequests {
			c.pause(ae)
		} else {
			c.resume()
		}
		return ae
	}
	c.resume()
	if out != nil {
		if err := fastjson.Unmarshal(resp.Body(), out); err != nil {
			return fmt.Errorf("cht %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// cooling returns a *PauseError while the client pauses.
func (c *Client) cooling() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if left := c.pauseUntil.Sub(c.now()); left > 0 {
		return &PauseError{Left: left, Cause: c.pauseCause}
	}
	return nil
}

// pause stops all requests for the cool-down, or the server's Retry-After
// when longer, doubling while refusals repeat; never longer than MaxPause.
func (c *Client) pause(cause *APIError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pauseFor = min(max(c.pauseFor*2, c.cooldown), MaxPause)
	c.pauseUntil = c.now().Add(min(max(c.pauseFor, cause.RetryAfter), MaxPause))
	c.pauseCause = cause
}

// Paused reports until when the client sends nothing, and why; a zero time
// when it does not pause.
func (c *Client) Paused() (until time.Time, cause string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pauseUntil.After(c.now()) {
		return time.Time{}, ""
	}
	return c.pauseUntil, (&PauseError{Cause: c.pauseCause}).why()
}

func (c *Client) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pauseFor = 0
}

// APIError is a non-2xx answer from the CHT.
type APIError struct {
	Method, Path string
	Status       int
	// Message is the answer's error and details, or the start of its body.
	Message string
	// RetryAfter is the server's Retry-After, when it sent one, at most
	// MaxPause.
	RetryAfter time.Duration
	// Location is where a redirect pointed, credentials redacted.
	Location string
}

// RetryAfterDuration is the server's Retry-After of a 429 or 503: how long
// to wait before trying again, without counting the answer as a failure.
func (e *APIError) RetryAfterDuration() time.Duration {
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		return e.RetryAfter
	}
	return 0
}

// Error implements error.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Status >= 300 && e.Status < 400 {
		msg = "redirected to " + cmp.Or(e.Location, "(no Location)") + ", not followed"
		if !temporaryRedirect(e.Status) {
			msg += "; a permanent redirect means CHT_URL is wrong (e.g. http:// where the CHT wants https://): set it to the address redirected to"
		}
	}
	return fmt.Sprintf("cht %s %s: %d: %s", e.Method, e.Path, e.Status, msg)
}

// temporaryRedirect reports the redirects that are often transient (a proxy
// sending traffic elsewhere during maintenance, a login page in front of an
// expiring session): 302, 303 and 307. A 301 or 308 (the POST-keeping form
// of 301, which Caddy and Traefik answer for http→https) is permanent: a
// wrong CHT_URL. The client never follows one, as the credentials must not
// travel to another address.
func temporaryRedirect(status int) bool {
	switch status {
	case http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect:
		return true
	}
	return false
}

// Permanent reports whether retrying the same request cannot succeed: client
// errors other than 401, 408, 409 and 429, redirects other than 302, 303 and
// 307 (a 301 or 308 is a wrong CHT_URL), and the 500s the CHT answers for an
// unknown form or a malformed record (docs/upstreams/cht.md trap 2).
func (e *APIError) Permanent() bool {
	switch {
	case temporaryRedirect(e.Status):
		return false
	case e.Status >= 300 && e.Status < 400:
		return true
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusRequestTimeout,
		e.Status == http.StatusConflict, e.Status == http.StatusTooManyRequests:
		return false
	case e.Status >= 400 && e.Status < 500:
		return true
	}
	return e.Status == http.StatusInternalServerError &&
		(strings.Contains(e.Message, "Form not found") || strings.Contains(e.Message, "Missing _meta") ||
			strings.Contains(e.Message, "Missing required field"))
}

func newAPIError(method, path string, resp *resty.Response, now time.Time) *APIError {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode()}
	e.RetryAfter = ParseRetryAfter(resp.Header().Get("Retry-After"), now)
	if e.Status >= 300 && e.Status < 400 {
		e.Location = redactURL(resp.Header().Get("Location"))
	}
	var body struct {
		Details any    `json:"details"`
		Error   string `json:"error"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	if json.Unmarshal(resp.Body(), &body) == nil && (body.Error != "" || body.Message != "") {
		parts := []string{body.Error}
		for _, s := range []string{body.Reason, body.Message} {
			if s != "" {
				parts = append(parts, s)
			}
		}
		if body.Details != nil {
			d, _ := json.Marshal(body.Details)
			parts = append(parts, strings.Trim(string(d), `"`))
		}
		e.Message = strings.Join(parts, ": ")
		return e
	}
	e.Message = errtext.Body(resp.Body(), 200)
	return e
}

// redactURL makes a Location safe to log: user information and query values
// (tokens, signatures) are replaced by REDACTED, and it is cut at 200 bytes.
func redactURL(loc string) string {
	if loc == "" {
		return ""
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "(unreadable Location)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return errtext.Cut(u.String(), 200)
}

// ParseRetryAfter reads a Retry-After header (seconds or an HTTP date) as a
// duration from now, at most MaxPause; 0 when absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	return retryafter.Parse(v, now, MaxPause)
}

// IsConflict reports whether err is a 409 conflict, such as creating a
// document whose _id exists already.
func IsConflict(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusConflict
}

// IsNotFound reports whether err is a 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}
