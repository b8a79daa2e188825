package cht

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

type uuidPage struct {
	Data   []string `json:"data"`
	Cursor *string  `json:"cursor"`
}

// maxUUIDPages bounds a look-up's pages (of uuidPageSize): a cursor that
// never ends must not keep a job busy.
const (
	uuidPageSize = 100
	maxUUIDPages = 100
)

// FindContacts returns the ids of contacts whose top-level field key equals
// value: GET /api/v1/contact/uuid?freetext=key:value (CHT 4.18+, docs/upstreams/cht.md §3). The
// match is exact and case-insensitive.
func (c *Client) FindContacts(ctx context.Context, key, value string) ([]string, error) {
	return c.findUUIDs(ctx, "/api/v1/contact/uuid", key, value)
}

// FindReports returns the ids of reports whose field key equals value:
// GET /api/v1/report/uuid?freetext=key:value (CHT 4.18+, docs/upstreams/cht.md §3),
// every page.
func (c *Client) FindReports(ctx context.Context, key, value string) ([]string, error) {
	return c.findUUIDs(ctx, "/api/v1/report/uuid", key, value)
}

func (c *Client) findUUIDs(ctx context.Context, path, key, value string) ([]string, error) {
	q := url.Values{"freetext": {strings.ToLower(key + ":" + value)}, "limit": {strconv.Itoa(uuidPageSize)}}
	var out []string
	for range maxUUIDPages {
		var page uuidPage
		if err := c.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Data...)
		if page.Cursor == nil || *page.Cursor == "" || len(page.Data) == 0 {
			return out, nil
		}
		q.Set("cursor", *page.Cursor)
	}
	return nil, fmt.Errorf("cht: %s %s: more than %d pages", path, key, maxUUIDPages)
}
