package openimis

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Claim holds the elements of an openIMIS Claim the mediator reads
// (docs/upstreams/openimis.md §4): created is the claim's own date, which a
// ClaimResponse does not carry (its created is the date it was converted).
type Claim struct {
	Created      string `json:"created"`
	ID           string `json:"id,omitempty"`
	ResourceType string `json:"resourceType"`
}

// GetClaim reads a claim: GET Claim/<uuid>/ (docs/upstreams/openimis.md §4,
// trap 21), with the claim right 111001. openIMIS answers an unknown UUID
// with HTTP 500, not 404 (trap 15).
func (c *Client) GetClaim(ctx context.Context, uuid string) (*Claim, error) {
	var cl Claim
	if _, err := c.do(ctx, http.MethodGet, "Claim/"+url.PathEscape(uuid)+"/", nil, nil, &cl); err != nil {
		return nil, err
	}
	if cl.ResourceType != "Claim" {
		return nil, fmt.Errorf("openimis GET Claim/%s/: answer is a %q, not a Claim", uuid, cl.ResourceType)
	}
	return &cl, nil
}
