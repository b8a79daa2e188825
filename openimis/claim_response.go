package openimis

import (
	"context"
	"net/http"
	"net/url"
)

// ClaimResponse holds the elements of an openIMIS ClaimResponse the mediator
// reads (§4). openIMIS posts it bare to Claim subscribers (§3.3) and returns
// it from GET ClaimResponse/ (§6).
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
// (§4). An unknown UUID is HTTP 500 (trap 15).
func (c *Client) GetClaimResponse(ctx context.Context, uuid string) (*ClaimResponse, error) {
	var cr ClaimResponse
	if _, err := c.do(ctx, http.MethodGet, "ClaimResponse/"+url.PathEscape(uuid)+"/", nil, nil, &cr); err != nil {
		return nil, err
	}
	return &cr, nil
}
