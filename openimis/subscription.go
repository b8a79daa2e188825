package openimis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Subscription is a FHIR Subscription as openIMIS stores it (docs/upstreams/openimis.md §2).
type Subscription struct {
	Channel      Channel `json:"channel"`
	Criteria     string  `json:"criteria"`
	End          string  `json:"end"`
	ID           string  `json:"id,omitempty"`
	Reason       string  `json:"reason"`
	ResourceType string  `json:"resourceType"`
	Status       string  `json:"status"`
}

// Channel is a Subscription's delivery channel. Only Header[0] is stored,
// and it must be a JSON object string to be usable (docs/upstreams/openimis.md §2.1, trap 5).
type Channel struct {
	Endpoint string   `json:"endpoint"`
	Header   []string `json:"header,omitempty"`
	Type     string   `json:"type"`
}

// Bundle is a FHIR searchset Bundle (docs/upstreams/openimis.md §6).
type Bundle struct {
	Entry        []BundleEntry `json:"entry,omitempty"`
	ResourceType string        `json:"resourceType"`
	Total        int           `json:"total"`
}

// BundleEntry is one Bundle entry; Resource is decoded by the caller.
type BundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource"`
}

// LastUpdatedLayout is the only _lastUpdated format openIMIS parses: no
// timezone (server time is UTC), no fractions (docs/upstreams/openimis.md §6).
const LastUpdatedLayout = "2006-01-02T15:04:05"

// listPageSize is the _count used when paging through subscriptions.
const listPageSize = 100

// ListSubscriptions returns every subscription visible to the user, of all
// users, expired ones included: GET Subscription/, following 1-based
// page-offset pages (docs/upstreams/openimis.md §2.2, §6). The next-page links openIMIS returns are
// ignored; they may name an internal host (docs/upstreams/openimis.md trap 14).
//
// openIMIS caches a list's total for an hour per identical query and cuts
// pages at that total, which would hide a subscription created since. The
// query therefore carries a _lastUpdated bound a century back that changes
// on every call, and differs between processes: it matches every
// subscription and is never the same query.
func (c *Client) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	// The bound moves forward with both the clock and a per-call counter, so
	// two calls never send the same one.
	ahead := time.Duration(c.lists.Add(1)%86400) * time.Second
	since := c.auth.now().UTC().AddDate(-100, 0, 0).Add(ahead).Format(LastUpdatedLayout)
	var all []Subscription
	for page := 1; ; page++ {
		var b Bundle
		_, err := c.do(ctx, http.MethodGet, "Subscription/", map[string]string{
			"_count":       strconv.Itoa(listPageSize),
			"_lastUpdated": "ge" + since,
			"page-offset":  strconv.Itoa(page),
		}, nil, &b)
		var ae *APIError
		if page > 1 && errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return all, nil // "Invalid page.": past the end
		}
		if err != nil {
			return nil, err
		}
		for i, e := range b.Entry {
			var s Subscription
			if err := json.Unmarshal(e.Resource, &s); err != nil {
				return nil, fmt.Errorf("openimis: subscription list page %d entry %d: %w", page, i, err)
			}
			all = append(all, s)
		}
		if len(b.Entry) < listPageSize || (b.Total > 0 && len(all) >= b.Total) {
			return all, nil
		}
	}
}

// GetSubscription reads one subscription: GET Subscription/<id>/ (docs/upstreams/openimis.md §2.2).
func (c *Client) GetSubscription(ctx context.Context, id string) (*Subscription, error) {
	var s Subscription
	if _, err := c.do(ctx, http.MethodGet, "Subscription/"+url.PathEscape(id)+"/", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// CreateSubscription creates a subscription: POST Subscription/
// (docs/upstreams/openimis.md §2.1). A server without Claim notifications
// answers 400 "Invalid resource (claim)" (docs/upstreams/openimis.md trap 1);
// see SubscriptionRefused.
func (c *Client) CreateSubscription(ctx context.Context, s Subscription) (*Subscription, error) {
	s.ResourceType = "Subscription"
	var out Subscription
	if _, err := c.do(ctx, http.MethodPost, "Subscription/", nil, s, &out); err != nil {
		return nil, err
	}
	if out.ID == "" {
		return nil, errors.New("openimis POST Subscription/: answer without id")
	}
	return &out, nil
}

// DeleteSubscription deletes a subscription: DELETE Subscription/<id>/, 204.
// Only the user who created it may (403 otherwise, docs/upstreams/openimis.md §2.4).
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "Subscription/"+url.PathEscape(id)+"/", nil, nil, nil)
	return err
}

// SubscriptionRefused reports whether err is openIMIS refusing the
// subscription's resource, as releases without Claim notifications do: 400
// "Error while saving a subscription: Invalid resource (claim)"
// (docs/upstreams/openimis.md §2.1). Other 400s are mistakes in the request,
// not a missing feature.
func SubscriptionRefused(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusBadRequest &&
		strings.Contains(strings.ToLower(ae.Message), "invalid resource")
}
