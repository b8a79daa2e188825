// Package openimis is a typed client for the parts of the openIMIS FHIR R4 API
// the mediator uses: login, Subscription, Patient, ClaimResponse and
// Communication. Section numbers in comments refer to the openIMIS contract
// note (docs/upstreams/openimis.md).
//
// The client is thin and quiet: one method per endpoint, no logging, and no
// retries except the single re-login after a 401 (docs/upstreams/openimis.md
// §1). Non-2xx answers come back as *APIError; the caller decides what is worth
// retrying. After a 429 the client sends nothing for a while and answers
// *RateLimitError instead.
package openimis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
	"github.com/cht-openimis/cht-openimis-mediator/internal/fastjson"
	"github.com/cht-openimis/cht-openimis-mediator/internal/httpc"
)

// maxResponseBody bounds what the client reads of any answer.
const maxResponseBody = 32 << 20

// Options configures a Client.
type Options struct {
	// FHIRURL is the absolute URL of the FHIR R4 API, ending in a slash,
	// e.g. https://imis.example.org/api/api_fhir_r4/.
	FHIRURL string
	// Username and Password are the openIMIS API user's credentials.
	Username, Password string
	// Timeout bounds every request. Defaults to 30 seconds.
	Timeout time.Duration
	// Transport replaces the HTTP transport (tests, TLS settings).
	Transport http.RoundTripper
	// Now is the clock of token expiry and of the rate-limit pause. Defaults
	// to time.Now.
	Now func() time.Time
	// RateLimitPause is how long the client sends nothing after a 429. openIMIS
	// in production allows 150 requests a minute per client address and answers
	// 429 without Retry-After (docs/upstreams/openimis.md §1, trap 17); a
	// request sent while limited is wasted and counted. Defaults to 10 seconds;
	// it doubles while 429s follow each other, up to a minute. A longer
	// Retry-After is honoured; no pause is longer than MaxPause.
	RateLimitPause time.Duration
}

// Client talks to one openIMIS FHIR API as one user. It is safe for
// concurrent use.
type Client struct {
	auth     *authenticator
	fhirPath string
	rc       *resty.Client
	timeout  httpc.Timeout
	lists    atomic.Int64 // calls of ListSubscriptions, to vary its query

	now            func() time.Time
	rateLimitPause time.Duration
	mu             sync.Mutex
	pauseUntil     time.Time // no request before, after a 429
	pauseFor       time.Duration
}

// New returns a Client. It does not contact the server.
func New(opts Options) (*Client, error) {
	if _, ok := httpc.ParseBase(opts.FHIRURL); !ok || !strings.HasSuffix(opts.FHIRURL, "/") {
		return nil, fmt.Errorf("openimis: FHIR URL %q must be absolute and end in /", opts.FHIRURL)
	}
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("openimis: username and password are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RateLimitPause <= 0 {
		opts.RateLimitPause = 10 * time.Second
	}
	opts.RateLimitPause = min(opts.RateLimitPause, MaxPause)
	// A redirect means a missing trailing slash or a proxy problem; a POST
	// silently re-sent as a GET would lose data (docs/upstreams/openimis.md
	// §8): NewResty surfaces it.
	rc := httpc.NewResty(httpc.Options{
		BaseURL: opts.FHIRURL, Accept: "application/json", BodyLimit: maxResponseBody, Transport: opts.Transport,
	})
	c := &Client{rc: rc, fhirPath: pathOf(opts.FHIRURL), now: opts.Now, rateLimitPause: opts.RateLimitPause}
	c.SetTimeout(opts.Timeout)
	// Start the list-query counter at a random point so that a restarted
	// process does not repeat its predecessor's queries.
	c.lists.Store(rand.Int64N(86400))
	c.auth = newAuthenticator(c, opts.Username, opts.Password, opts.Now)
	return c, nil
}

// SetTimeout changes the bound of every request from now on; it is how
// runtime configuration reaches the client. Non-positive values are ignored.
func (c *Client) SetTimeout(d time.Duration) {
	c.timeout.Set(d)
}

// withTimeout bounds one request.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return c.timeout.Bound(ctx)
}

func pathOf(u string) string {
	rest := u[strings.Index(u, "://")+3:]
	if i := strings.Index(rest, "/"); i >= 0 {
		return rest[i:]
	}
	return "/"
}

// do sends an authenticated request to path (relative to the FHIR base, with
// its trailing slash) and decodes a 2xx JSON answer into out (when non-nil).
// A 401 triggers one re-login and one retry (docs/upstreams/openimis.md §1, trap 9).
func (c *Client) do(ctx context.Context, method, path string, query map[string]string, body, out any) (*resty.Response, error) {
	for attempt := 0; ; attempt++ {
		if err := c.rateLimited(); err != nil {
			return nil, err
		}
		token, err := c.auth.token(ctx)
		if err != nil {
			return nil, err
		}
		rctx, cancel := c.withTimeout(ctx)
		sent := c.now()
		req := c.rc.R().SetContext(rctx).SetAuthToken(token).SetQueryParams(query)
		if body != nil {
			req.SetHeader("Content-Type", "application/json").SetBody(body)
		}
		resp, err := req.Execute(method, "/"+path)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("openimis %s %s: %w", method, c.fhirPath+path, transportError(err))
		}
		if resp.StatusCode() == http.StatusUnauthorized && attempt == 0 {
			c.auth.invalidate(token)
			continue
		}
		if resp.StatusCode() < 200 || resp.StatusCode() > 299 {
			retryAfter := parseRetryAfter(resp.Header().Get("Retry-After"), c.now())
			return resp, c.answered(sent, resp.StatusCode(), retryAfter, newAPIError(method, c.fhirPath+path, resp))
		}
		c.answered(sent, resp.StatusCode(), 0, nil)
		if out != nil {
			if err := fastjson.Unmarshal(resp.Body(), out); err != nil {
				return resp, fmt.Errorf("openimis %s %s: decode answer: %w", method, c.fhirPath+path, err)
			}
		}
		return resp, nil
	}
}

// transportError drops the method and URL that *url.Error repeats.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// APIError is a non-2xx answer from openIMIS.
type APIError struct {
	Method, Path string
	Status       int
	// Message is the OperationOutcome's issue text, the JSON string body of a
	// login error, or the start of any other body.
	Message string
}

// Error implements error.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("openimis %s %s: %d: %s", e.Method, e.Path, e.Status, msg)
}

// Permanent reports whether retrying the same request cannot succeed: client
// errors other than 401, 408 and 429, redirects (a misconfigured URL), and the
// validation problems the 24.10 server reports as HTTP 500
// (docs/upstreams/openimis.md §8, trap 11).
func (e *APIError) Permanent() bool {
	switch {
	case e.Status >= 300 && e.Status < 400:
		return true
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooManyRequests:
		return false
	case e.Status >= 400 && e.Status < 500:
		return true
	}
	for _, s := range permanent500 {
		if strings.Contains(e.Message, s) {
			return true
		}
	}
	return false
}

// permanent500 are messages of validation errors that openIMIS 24.10 answers
// with HTTP 500 (docs/upstreams/openimis.md §5, §8).
var permanent500 = []string{
	"Claim does not exist",
	"Failed to find the resource",
	"Invalid resource",
	"Missing or invalid",
	"expected a number",
	"has no attribute",
	"is missing",
	"is required",
	"matching query does not exist", // an unknown UUID, or one the user's area hides (docs/upstreams/openimis.md §7)
	"must be =",
	"must be either 'yes' or 'no'",
	"must have 5 elements",
	"must support all five",
	"not a valid UUID",
	"out of range",
	"validation error",
}

// NotShown reports whether err is openIMIS answering that a resource does not
// exist for the user: its UUID is unknown, or the user's area (row security)
// hides it. openIMIS answers this with a 500 (docs/upstreams/openimis.md §7, trap 15).
func NotShown(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusInternalServerError &&
		strings.Contains(ae.Message, "matching query does not exist")
}

// FeedbackExists reports whether err is openIMIS refusing a second feedback
// for a claim, which means the feedback is already stored (docs/upstreams/openimis.md trap 13).
func FeedbackExists(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && strings.Contains(ae.Message, "Feedback exists for this claim")
}

func newAPIError(method, path string, resp *resty.Response) *APIError {
	return &APIError{Method: method, Path: path, Status: resp.StatusCode(), Message: errorMessage(resp.Body())}
}

// errorMessage extracts a short human message from an error body.
func errorMessage(body []byte) string {
	var oo OperationOutcome
	if json.Unmarshal(body, &oo) == nil && oo.ResourceType == "OperationOutcome" {
		return oo.Text()
	}
	var s string
	if json.Unmarshal(body, &s) == nil {
		return s
	}
	var detail struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &detail) == nil && detail.Detail != "" {
		return detail.Detail
	}
	return errtext.Body(body, 200)
}

// OperationOutcome is the FHIR error resource openIMIS answers with
// (docs/upstreams/openimis.md §8).
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one OperationOutcome issue.
type Issue struct {
	Severity string       `json:"severity"`
	Code     string       `json:"code"`
	Details  *IssueDetail `json:"details,omitempty"`
}

// IssueDetail holds an issue's text. openIMIS sends a string or a JSON array
// of strings (a DRF ValidationError detail).
type IssueDetail struct {
	Text json.RawMessage `json:"text"`
}

// Text joins the issues' texts.
func (o OperationOutcome) Text() string {
	var parts []string
	for _, is := range o.Issue {
		if is.Details == nil || len(is.Details.Text) == 0 {
			continue
		}
		var s string
		if json.Unmarshal(is.Details.Text, &s) == nil {
			parts = append(parts, s)
			continue
		}
		var list []string
		if json.Unmarshal(is.Details.Text, &list) == nil {
			parts = append(parts, list...)
			continue
		}
		parts = append(parts, string(is.Details.Text))
	}
	return strings.Join(parts, "; ")
}
