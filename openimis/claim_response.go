package openimis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ClaimResponse holds the elements of an openIMIS ClaimResponse the mediator
// reads (docs/upstreams/openimis.md §4). openIMIS posts it bare to Claim
// subscribers (docs/upstreams/openimis.md §3.3) and returns it from GET
// ClaimResponse/ (docs/upstreams/openimis.md §6).
type ClaimResponse struct {
	Communication []Reference  `json:"communicationRequest,omitempty"`
	Created       string       `json:"created,omitempty"`
	ID            string       `json:"id,omitempty"`
	Identifier    []Identifier `json:"identifier,omitempty"`
	Outcome       string       `json:"outcome,omitempty"`
	Patient       *Reference   `json:"patient,omitempty"`
	Request       *Reference   `json:"request,omitempty"`
	ResourceType  string       `json:"resourceType"`
	Status        string       `json:"status,omitempty"`
}

// GetClaimResponse reads one claim's ClaimResponse: GET ClaimResponse/<uuid>/
// (docs/upstreams/openimis.md §4). An unknown UUID is HTTP 500
// (docs/upstreams/openimis.md trap 15).
func (c *Client) GetClaimResponse(ctx context.Context, uuid string) (*ClaimResponse, error) {
	var cr ClaimResponse
	if _, err := c.do(ctx, http.MethodGet, "ClaimResponse/"+url.PathEscape(uuid)+"/", nil, nil, &cr); err != nil {
		return nil, err
	}
	return &cr, nil
}

// ClaimResponsePage is one page of a ClaimResponse search.
type ClaimResponsePage struct {
	// ClaimResponses are the page's entries, oldest first.
	ClaimResponses []ClaimResponse
	// Last reports that no page follows.
	Last bool
}

// SearchClaimResponses reads one page of the claims created at or after since:
// GET ClaimResponse/?_lastUpdated=ge<since>&_count=<count>&page-offset=<page>
// (docs/upstreams/openimis.md §6, trap 14). since is sent in UTC without a zone
// or fractions, the only form openIMIS parses; page is 1-based. A page past the
// end is an empty last page.
func (c *Client) SearchClaimResponses(ctx context.Context, since time.Time, page, count int) (ClaimResponsePage, error) {
	var b Bundle
	_, err := c.do(ctx, http.MethodGet, "ClaimResponse/", map[string]string{
		"_lastUpdated": "ge" + since.UTC().Format(LastUpdatedLayout),
		"_count":       strconv.Itoa(count),
		"page-offset":  strconv.Itoa(page),
	}, nil, &b)
	var ae *APIError
	if page > 1 && errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return ClaimResponsePage{Last: true}, nil // "Invalid page."
	}
	if err != nil {
		return ClaimResponsePage{}, err
	}
	out := ClaimResponsePage{Last: len(b.Entry) < count}
	for i, e := range b.Entry {
		var cr ClaimResponse
		if err := json.Unmarshal(e.Resource, &cr); err != nil {
			return ClaimResponsePage{}, fmt.Errorf("openimis: ClaimResponse search page %d entry %d: %w", page, i, err)
		}
		out.ClaimResponses = append(out.ClaimResponses, cr)
	}
	return out, nil
}
