// Package httpc holds what the mediator's upstream clients (cht, openimis,
// openhim, fhir) share about HTTP: how a resty client is set up, how a base
// URL is checked, and a request bound that runtime configuration can change.
package httpc

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"
)

// UserAgent is what every upstream sees the mediator as.
const UserAgent = "cht-openimis-mediator"

// Options configures NewResty.
type Options struct {
	// BaseURL prefixes relative request paths; a trailing slash is dropped.
	// Empty leaves every request's URL as it is given.
	BaseURL string
	// Accept is the Accept header; empty sends none.
	Accept string
	// UserAgent replaces UserAgent when set.
	UserAgent string
	// BodyLimit bounds what is read of any answer.
	BodyLimit int
	// Transport replaces resty's own when set.
	Transport http.RoundTripper
}

// NewResty returns a resty client as every upstream client wants it: its
// headers and answer size limit, resty's warnings off, and redirects never
// followed. A POST re-sent as a GET by a redirect would be lost, and
// credentials must not travel to another address, so a 3xx comes back to
// the caller as the answer it is.
func NewResty(o Options) *resty.Client {
	rc := resty.New().
		SetHeader("User-Agent", cmp.Or(o.UserAgent, UserAgent)).
		SetResponseBodyLimit(o.BodyLimit).
		SetDisableWarn(true).
		SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}))
	if o.BaseURL != "" {
		rc.SetBaseURL(strings.TrimSuffix(o.BaseURL, "/"))
	}
	if o.Accept != "" {
		rc.SetHeader("Accept", o.Accept)
	}
	if o.Transport != nil {
		rc.SetTransport(o.Transport)
	}
	return rc
}

// ParseBase parses an upstream's base URL: ok only when it is absolute,
// http or https, with a host.
func ParseBase(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, false
	}
	return u, true
}

// Timeout is the bound of each request of a client. Runtime configuration
// changes it while requests run.
type Timeout struct {
	d atomic.Int64
}

// Set changes the bound of every request from now on. Non-positive values
// are ignored.
func (t *Timeout) Set(d time.Duration) {
	if d > 0 {
		t.d.Store(int64(d))
	}
}

// Get returns the current bound.
func (t *Timeout) Get() time.Duration { return time.Duration(t.d.Load()) }

// Bound returns ctx bounded by the current timeout.
func (t *Timeout) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.Get())
}
