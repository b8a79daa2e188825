package fhir

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cht-openimis/cht-openimis-mediator/internal/errtext"
)

// Status calls $status on one Subscription
// (docs/upstreams/fhir-subscriptions.md §4): GET, or the vendor's verb. The
// answer may be a Bundle of any type (searchset, history,
// subscription-notification) or a bare SubscriptionStatus or Parameters;
// the status is found by resource type (trap 20). The Notification's Kind
// is KindStatus.
func (c *Client) Status(ctx context.Context, id string) (Notification, error) {
	if !validID(id) {
		return Notification{}, fmt.Errorf("fhir: $status: id %q is not usable", errtext.Cut(id, 64))
	}
	u := c.urlOf(c.resourcePath("Subscription", id) + "/$status")
	r := request{method: c.quirks.StatusMethod, url: u}
	if r.method == http.MethodPost {
		r.body = parameters{ResourceType: "Parameters"}
	}
	return c.operation(ctx, r)
}

// Events calls $events on one Subscription for the events since..until
// (inclusive; 0 leaves a bound to the server, which then answers its
// latest, e.g. the last 100 on Aidbox) (§4, trap 19). It POSTs Parameters
// eventsSinceNumber and eventsUntilNumber as strings, the IG's form, or
// GETs them as query parameters where the vendor wants GET (Aidbox zen).
// A 405 to one verb makes the client use the other from then on. The
// answer is an event Notification whose Events may lack resources or even
// be fewer than asked: the caller falls back to a search.
func (c *Client) Events(ctx context.Context, id string, since, until int64) (Notification, error) {
	if !validID(id) {
		return Notification{}, fmt.Errorf("fhir: $events: id %q is not usable", errtext.Cut(id, 64))
	}
	if since < 0 || until < 0 || (until > 0 && until < since) {
		return Notification{}, fmt.Errorf("fhir: $events: range %d..%d is not usable", since, until)
	}
	u := c.urlOf(c.resourcePath("Subscription", id) + "/$events")
	n, err := c.operation(ctx, c.eventsRequest(u, since, until, c.eventsMethod()))
	if HasStatus(err, http.StatusMethodNotAllowed) {
		c.eventsFlipped.Store(!c.eventsFlipped.Load())
		n, err = c.operation(ctx, c.eventsRequest(u, since, until, c.eventsMethod()))
	}
	return n, err
}

// EventsMethod is the verb the client uses for $events now.
func (c *Client) EventsMethod() string { return c.eventsMethod() }

func (c *Client) eventsMethod() string {
	m := c.quirks.EventsMethod
	if c.eventsFlipped.Load() {
		if m == http.MethodGet {
			return http.MethodPost
		}
		return http.MethodGet
	}
	return m
}

func (c *Client) eventsRequest(u string, since, until int64, method string) request {
	r := request{method: method, url: u}
	if method == http.MethodGet {
		r.query = url.Values{}
		if since > 0 {
			r.query.Set("eventsSinceNumber", strconv.FormatInt(since, 10))
		}
		if until > 0 {
			r.query.Set("eventsUntilNumber", strconv.FormatInt(until, 10))
		}
		return r
	}
	p := parameters{ResourceType: "Parameters"}
	if since > 0 {
		p.Parameter = append(p.Parameter, parameter{Name: "eventsSinceNumber", ValueString: strconv.FormatInt(since, 10)})
	}
	if until > 0 {
		p.Parameter = append(p.Parameter, parameter{Name: "eventsUntilNumber", ValueString: strconv.FormatInt(until, 10)})
	}
	r.body = p
	return r
}

type parameters struct {
	ResourceType string      `json:"resourceType"`
	Parameter    []parameter `json:"parameter,omitempty"`
}

type parameter struct {
	Name        string `json:"name"`
	ValueString string `json:"valueString,omitempty"`
}

// operation sends an operation request and reads its answer as a
// notification.
func (c *Client) operation(ctx context.Context, r request) (Notification, error) {
	resp, err := c.do(ctx, r)
	if err != nil {
		return Notification{}, err
	}
	n, err := ParseNotification(http.MethodPost, "", resp.Header().Get("Content-Type"), resp.Body())
	if err != nil {
		return Notification{}, fmt.Errorf("fhir %s %s: %w", r.method, pathForErrors(r.url), err)
	}
	if n.Kind == KindPing || n.Kind == KindResource {
		return Notification{}, fmt.Errorf("fhir %s %s: the answer holds no subscription status", r.method, pathForErrors(r.url))
	}
	return n, nil
}
