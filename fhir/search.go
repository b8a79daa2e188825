package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Page is one page of a search.
type Page struct {
	// Resources are the page's match entries (entries with a resource;
	// search.mode include entries are left out).
	Resources []json.RawMessage
	// Next is the absolute URL of the next page, under the client's base,
	// or "" on the last page. It can be stored and given to NextPage later.
	Next string
	// Total is the server's count of matches, -1 when not given.
	Total int
}

// LastUpdatedSince is the _lastUpdated value of "at or after t", as an
// instant with a zone (§7).
func LastUpdatedSince(t time.Time) string { return "ge" + t.UTC().Format(time.RFC3339) }

// LastUpdatedBefore is the _lastUpdated value of "before t".
func LastUpdatedBefore(t time.Time) string { return "lt" + t.UTC().Format(time.RFC3339) }

// Search runs GET <base>/<type segment>?<params> and returns its first page
// (docs/upstreams/fhir-subscriptions.md §7).
func (c *Client) Search(ctx context.Context, resourceType string, params url.Values) (Page, error) {
	if !validType(resourceType) {
		return Page{}, fmt.Errorf("fhir: search %q: not a resource type", resourceType)
	}
	return c.searchPage(ctx, c.urlOf(c.resourcePath(resourceType)), params)
}

// ErrOutsideBase is NextPage's refusal of a URL outside the client's base
// (a next link saved before the base was changed, say).
var ErrOutsideBase = errors.New("not under the base")

// NextPage fetches the page a Page.Next names. A URL outside the client's
// base is refused (ErrOutsideBase), so that credentials never travel
// elsewhere.
func (c *Client) NextPage(ctx context.Context, next string) (Page, error) {
	u, err := url.Parse(next)
	if err != nil || !c.underBase(u) {
		return Page{}, fmt.Errorf("fhir: next page %q is %w %s", redactURL(next), ErrOutsideBase, c.BaseURL())
	}
	q := u.Query()
	u.RawQuery = ""
	return c.searchPage(ctx, u.String(), q)
}

func (c *Client) searchPage(ctx context.Context, pageURL string, params url.Values) (Page, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Total        *int   `json:"total"`
		Link         []struct {
			Relation string `json:"relation"`
			URL      string `json:"url"`
		} `json:"link"`
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
			Search   *struct {
				Mode string `json:"mode"`
			} `json:"search"`
		} `json:"entry"`
	}
	if err := c.doJSON(ctx, request{method: http.MethodGet, url: pageURL, query: params}, &b); err != nil {
		return Page{}, err
	}
	if b.ResourceType != "Bundle" {
		return Page{}, fmt.Errorf("fhir GET %s: answer is not a Bundle", pathForErrors(pageURL))
	}
	p := Page{Total: -1}
	if b.Total != nil {
		p.Total = *b.Total
	}
	for _, e := range b.Entry {
		if len(e.Resource) == 0 || string(e.Resource) == "null" || (e.Search != nil && e.Search.Mode != "" && e.Search.Mode != "match") {
			continue
		}
		p.Resources = append(p.Resources, e.Resource)
	}
	for _, l := range b.Link {
		if l.Relation == "next" && l.URL != "" {
			next, err := c.reroot(l.URL, pageURL, params)
			if err != nil {
				return Page{}, fmt.Errorf("fhir GET %s: %w", pathForErrors(pageURL), err)
			}
			p.Next = next
		}
	}
	return p, nil
}

// underBase reports whether u lies on the base's origin and under its path.
func (c *Client) underBase(u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, c.base.Scheme) || !strings.EqualFold(u.Host, c.base.Host) {
		return false
	}
	p := u.Path
	return p == c.base.Path || strings.HasPrefix(p, c.base.Path+"/") || (c.base.Path == "" && strings.HasPrefix(p, "/"))
}

// reroot makes a next link usable (docs/upstreams/fhir-subscriptions.md
// §7, trap 21). A link under the base is used as it is. Otherwise the link
// lies about the address (openIMIS names an internal host; HeyDonto drops
// /site/<id>): for vendors that page with a token, the token is copied onto
// the query of the page just read; else the link's query is kept and its
// path rebuilt on the base, as the search path when the link ends with the
// searched type, or as the base itself (HAPI's ?_getpages= form).
func (c *Client) reroot(link, pageURL string, pageQuery url.Values) (string, error) {
	page, err := url.Parse(pageURL)
	if err != nil {
		return "", err
	}
	l, err := page.Parse(link) // relative links resolve against the page
	if err != nil {
		return "", fmt.Errorf("unreadable next link")
	}
	if c.underBase(l) {
		return l.String(), nil
	}
	lq := l.Query()
	if tp := c.quirks.PageToken; tp != "" && lq.Get(tp) != "" {
		q := url.Values{}
		for k, v := range pageQuery {
			q[k] = append([]string(nil), v...)
		}
		q.Set(tp, lq.Get(tp))
		page.RawQuery = q.Encode()
		return page.String(), nil
	}
	rel := strings.TrimPrefix(page.Path, c.base.Path)
	out := *c.base
	if strings.HasSuffix(strings.TrimSuffix(l.Path, "/"), strings.TrimSuffix(rel, "/")) && strings.Trim(rel, "/") != "" {
		out.Path = c.base.Path + rel
	}
	out.RawQuery = l.RawQuery
	return out.String(), nil
}
