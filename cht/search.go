package cht

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

type uuidPage struct {
	Data []string `json:"data"`
}

// FindContacts returns the ids of contacts whose top-level field key equals
// value: GET /api/v1/contact/uuid?freetext=key:value (CHT 4.18+, docs/upstreams/cht.md §3). The
// match is exact and case-insensitive.
func (c *Client) FindContacts(ctx context.Context, key, value string) ([]string, error) {
	return c.findUUIDs(ctx, "/api/v1/contact/uuid", key, value)
}

// FindReports returns the ids of reports whose field key equals value:
// GET /api/v1/report/uuid?freetext=key:value (CHT 4.18+, docs/upstreams/cht.md §3).
func (c *Client) FindReports(ctx context.Context, key, value string) ([]string, error) {
	return c.findUUIDs(ctx, "/api/v1/report/uuid", key, value)
}

func (c *Client) findUUIDs(ctx context.Context, path, key, value string) ([]string, error) {
	q := url.Values{"freetext": {strings.ToLower(key + ":" + value)}, "limit": {"100"}}
	var page uuidPage
	if err := c.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
		return nil, err
	}
	return page.Data, nil
}
