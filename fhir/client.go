// Package fhir is a typed client for FHIR servers that announce claim
// outcomes through subscriptions: R4 criteria-based (Kodjin, HeyDonto,
// HAPI), R4/R4B backport topic-based (Aidbox) and R5. It covers what the
// mediator needs: the CapabilityStatement and dialect detection,
// Subscriptions of each dialect, $status and $events, paged search, reading
// a resource, and parsing every notification shape a callback receives.
//
// Section and trap numbers in comments refer to the contract note
// docs/upstreams/fhir-subscriptions.md. Vendor departures from the
// specifications are data (Quirks in vendor.go), not branches.
//
// The client is thin and quiet: one method per endpoint, no logging, and no
// retries except the single re-login after a 401 (trap 24). Non-2xx answers
// come back as *APIError; the caller decides what is worth retrying. It
// never follows a redirect nor sends a request outside its base URL, so
// credentials never travel elsewhere.
package fhir

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
	"github.com/cht-openimis/cht-openimis-mediator/internal/httpc"
	"github.com/cht-openimis/cht-openimis-mediator/internal/retryafter"
)

// maxResponseBody bounds what the client reads of any answer.
const maxResponseBody = 32 << 20

// MaxPause bounds a server's Retry-After as the client reports it.
const MaxPause = 5 * time.Minute

// ContentType is the media type of the bodies the client sends and the
// first one it accepts.
const ContentType = "application/fhir+json"

// Options configures a Client.
type Options struct {
	// BaseURL is the FHIR base, absolute http(s) without credentials, e.g.
	// https://box.example.org/fhir or https://api.heydonto.com/site/42/fhir.
	BaseURL string
	// Vendor selects the quirks (vendor.go). Empty is VendorGeneric.
	Vendor Vendor
	// PathStyle replaces the vendor's path style when set.
	PathStyle PathStyle
	// PathOverrides names the path segment of single resource types, on top
	// of the style.
	PathOverrides map[string]string
	// Auth authenticates every request. Nil is None.
	Auth Authenticator
	// Timeout bounds every request, and every login apart. Defaults to 30
	// seconds.
	Timeout time.Duration
	// Transport replaces the HTTP transport (metrics instrumentation, TLS
	// settings, tests).
	Transport http.RoundTripper
	// UserAgent is sent with every request. Defaults to
	// cht-openimis-mediator.
	UserAgent string
	// Now is the clock of Retry-After dates. Defaults to time.Now.
	Now func() time.Time
}

// Client talks to one FHIR server. It is safe for concurrent use.
type Client struct {
	auth    Authenticator
	base    *url.URL // path without its trailing slash
	hc      *http.Client
	now     func() time.Time
	paths   Paths
	quirks  Quirks
	rc      *resty.Client
	timeout httpc.Timeout
	vendor  Vendor

	// eventsFlipped is set once $events answered 405 to the vendor's verb:
	// the other verb is used from then on (trap 19).
	eventsFlipped atomic.Bool
}

// New returns a Client. It does not contact the server.
func New(opts Options) (*Client, error) {
	base, err := parseBase(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	vendor := cmp.Or(opts.Vendor, VendorGeneric)
	q, ok := QuirksOf(vendor)
	if !ok {
		return nil, fmt.Errorf("fhir: unknown vendor %q", opts.Vendor)
	}
	paths := Paths{Style: cmp.Or(opts.PathStyle, q.Paths.Style, PathFHIR), Overrides: map[string]string{}}
	if !paths.Style.Valid() {
		return nil, fmt.Errorf("fhir: unknown path style %q (fhir or kebab-lower)", opts.PathStyle)
	}
	for t, s := range q.Paths.Overrides {
		paths.Overrides[t] = s
	}
	for t, s := range opts.PathOverrides {
		if !validType(t) || s == "" || strings.ContainsAny(s, "/?#%") {
			return nil, fmt.Errorf("fhir: path override %q → %q: want a resource type and one path segment", t, s)
		}
		paths.Overrides[t] = s
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Auth == nil {
		opts.Auth = None{}
	}
	// A POST re-sent as a GET would be lost, and credentials must not
	// travel to another address: NewResty never follows a redirect.
	rc := httpc.NewResty(httpc.Options{
		Accept: ContentType + ", application/json;q=0.9", UserAgent: opts.UserAgent,
		BodyLimit: maxResponseBody, Transport: opts.Transport,
	})
	// The authenticators log in through the same transport, never
	// following redirects either.
	hc := &http.Client{
		Transport: rc.GetClient().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	c := &Client{auth: opts.Auth, base: base, hc: hc, now: opts.Now, paths: paths, quirks: q, rc: rc, vendor: vendor}
	c.SetTimeout(opts.Timeout)
	return c, nil
}

// parseBase checks a base URL: absolute http(s), a host, no credentials,
// query or fragment.
func parseBase(s string) (*url.URL, error) {
	u, ok := httpc.ParseBase(s)
	if !ok {
		return nil, fmt.Errorf("fhir: base URL %q must be an absolute http(s) URL", redactURL(s))
	}
	if u.User != nil {
		return nil, errors.New("fhir: base URL must not carry credentials: configure the authentication instead")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("fhir: base URL %q must have no query or fragment", redactURL(s))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// SetTimeout changes the bound of every request from now on; it is how
// runtime configuration reaches the client. Non-positive values are ignored.
func (c *Client) SetTimeout(d time.Duration) {
	c.timeout.Set(d)
}

// Vendor is the vendor whose quirks the client follows.
func (c *Client) Vendor() Vendor { return c.vendor }

// Quirks are the quirks the client follows.
func (c *Client) Quirks() Quirks { return c.quirks }

// BaseURL is the configured FHIR base, without a trailing slash.
func (c *Client) BaseURL() string { return c.base.String() }

// Segment is the path segment of a resource type on this server.
func (c *Client) Segment(resourceType string) string { return c.paths.Segment(resourceType) }

// resourcePath is the path below the base of a type, an instance or an
// operation: parts are escaped one by one.
func (c *Client) resourcePath(resourceType string, more ...string) string {
	parts := []string{c.paths.Segment(resourceType)}
	for _, m := range more {
		parts = append(parts, url.PathEscape(m))
	}
	return strings.Join(parts, "/")
}

// urlOf is the absolute URL of rel below the base.
func (c *Client) urlOf(rel string) string {
	return c.base.String() + "/" + strings.TrimPrefix(rel, "/")
}

// request is one call: an absolute URL under the base, its query and body.
type request struct {
	method string
	url    string
	query  url.Values
	body   any
	// contentType of body; ContentType when empty.
	contentType string
}

// do sends an authenticated request and returns a 2xx answer; others come
// back as *APIError. A 401 makes the authenticator log in again, and the
// request is sent once more (trap 24).
func (c *Client) do(ctx context.Context, r request) (*resty.Response, error) {
	path := pathForErrors(r.url)
	for attempt := 0; ; attempt++ {
		actx, cancel := c.withTimeout(ctx)
		authz, err := c.auth.Authorization(actx, c.hc)
		cancel()
		if err != nil {
			return nil, err
		}
		rctx, cancel := c.withTimeout(ctx)
		req := c.rc.R().SetContext(rctx)
		if authz != "" {
			req.SetHeader("Authorization", authz)
		}
		if len(r.query) > 0 {
			req.SetQueryParamsFromValues(r.query)
		}
		if r.body != nil {
			req.SetHeader("Content-Type", cmp.Or(r.contentType, ContentType)).SetBody(r.body)
		}
		resp, err := req.Execute(r.method, r.url)
		cancel()
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("fhir %s %s: %w", r.method, path, err)
		}
		if resp.StatusCode() == http.StatusUnauthorized && attempt == 0 && c.auth.Rejected(authz) {
			continue
		}
		if resp.StatusCode() < 200 || resp.StatusCode() > 299 {
			return resp, newAPIError(r.method, path, resp, c.now())
		}
		return resp, nil
	}
}

// getJSON sends a request and decodes a 2xx answer into out.
func (c *Client) doJSON(ctx context.Context, r request, out any) error {
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.Body(), out); err != nil {
		return fmt.Errorf("fhir %s %s: decode answer: %w", r.method, pathForErrors(r.url), err)
	}
	return nil
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return c.timeout.Bound(ctx)
}

// pathForErrors is the path of a URL, for messages: no origin, no query
// (page tokens, search values).
func pathForErrors(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unreadable URL)"
	}
	return cmp.Or(u.EscapedPath(), "/")
}

// Read returns the resource type/id as the server stores it. A deleted or
// unknown resource is an *APIError with status 404 or 410 (IsGone).
func (c *Client) Read(ctx context.Context, resourceType, id string) (json.RawMessage, error) {
	if !validType(resourceType) || !validID(id) {
		return nil, fmt.Errorf("fhir: read %q/%q: not a resource type and id", resourceType, id)
	}
	var raw json.RawMessage
	if err := c.doJSON(ctx, request{method: http.MethodGet, url: c.urlOf(c.resourcePath(resourceType, id))}, &raw); err != nil {
		return nil, err
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(raw, &head) != nil || head.ResourceType != resourceType {
		return nil, fmt.Errorf("fhir GET %s: answer is not a %s", pathForErrors(c.urlOf(c.resourcePath(resourceType, id))), resourceType)
	}
	return raw, nil
}

// APIError is a non-2xx answer.
type APIError struct {
	Method, Path string
	Status       int
	// Message is the OperationOutcome's text, a JSON error's message, or
	// the start of any other body.
	Message string
	// RetryAfter is the server's Retry-After, at most MaxPause.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Status >= 300 && e.Status < 400 {
		msg = "redirected, not followed: check the base URL"
	}
	return fmt.Sprintf("fhir %s %s: %d: %s", e.Method, e.Path, e.Status, msg)
}

// Permanent reports whether retrying the same request cannot succeed:
// redirects, and client errors other than 401, 408, 409 and 429.
func (e *APIError) Permanent() bool {
	switch {
	case e.Status >= 300 && e.Status < 400:
		return true
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusRequestTimeout,
		e.Status == http.StatusConflict, e.Status == http.StatusTooManyRequests:
		return false
	}
	return e.Status >= 400 && e.Status < 500
}

// RetryAfterDuration is the Retry-After of a 429 or 503: how long to wait
// before trying again.
func (e *APIError) RetryAfterDuration() time.Duration {
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		return e.RetryAfter
	}
	return 0
}

// IsGone reports whether err is a 404 or 410: the resource does not exist
// (any more) (trap 23).
func IsGone(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusGone)
}

// HasStatus reports whether err is an *APIError with one of statuses.
func HasStatus(err error, statuses ...int) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, s := range statuses {
		if ae.Status == s {
			return true
		}
	}
	return false
}

func newAPIError(method, path string, resp *resty.Response, now time.Time) *APIError {
	return &APIError{
		Method: method, Path: path, Status: resp.StatusCode(),
		Message:    errorMessage(resp.Body()),
		RetryAfter: retryafter.Parse(resp.Header().Get("Retry-After"), now, MaxPause),
	}
}

// errorMessage extracts a short message from an error body: an
// OperationOutcome's issues, a JSON object's message or error, or the
// start of the text.
func errorMessage(body []byte) string {
	var oo OperationOutcome
	if json.Unmarshal(body, &oo) == nil && oo.ResourceType == "OperationOutcome" {
		if t := oo.Text(); t != "" {
			return errtext.Cut(t, 300)
		}
	}
	var obj struct {
		Message          string `json:"message"`
		Error            any    `json:"error"`
		ErrorDescription string `json:"error_description"`
		StatusText       string `json:"statusText"`
	}
	if json.Unmarshal(body, &obj) == nil {
		var parts []string
		if s, ok := obj.Error.(string); ok && s != "" {
			parts = append(parts, s)
		}
		for _, s := range []string{obj.ErrorDescription, obj.Message, obj.StatusText} {
			if s != "" {
				parts = append(parts, s)
			}
		}
		if len(parts) > 0 {
			return errtext.Cut(strings.Join(parts, ": "), 300)
		}
	}
	return errtext.Body(body, 200)
}

// redactURL makes a URL safe to show: no user information, no query.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unreadable URL)"
	}
	u.User = nil
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	return errtext.Cut(u.String(), 200)
}

// OperationOutcome is FHIR's error resource.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one OperationOutcome issue.
type Issue struct {
	Severity    string           `json:"severity"`
	Code        string           `json:"code"`
	Details     *CodeableConcept `json:"details,omitempty"`
	Diagnostics string           `json:"diagnostics,omitempty"`
}

// Text joins the issues' details and diagnostics.
func (o OperationOutcome) Text() string {
	var parts []string
	for _, is := range o.Issue {
		if is.Details != nil && is.Details.Text != "" {
			parts = append(parts, is.Details.Text)
		}
		if is.Diagnostics != "" {
			parts = append(parts, is.Diagnostics)
		}
	}
	return strings.Join(parts, "; ")
}
