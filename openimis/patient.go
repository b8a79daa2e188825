package openimis

import (
	"context"
	"net/http"
	"net/url"
)

// Patient holds the elements of an openIMIS Patient (an insuree) the mediator
// reads (docs/upstreams/openimis.md §7).
type Patient struct {
	BirthDate    string         `json:"birthDate,omitempty"`
	Gender       string         `json:"gender,omitempty"`
	ID           string         `json:"id,omitempty"`
	Identifier   []Identifier   `json:"identifier,omitempty"`
	Name         []HumanName    `json:"name,omitempty"`
	ResourceType string         `json:"resourceType"`
	Telecom      []ContactPoint `json:"telecom,omitempty"`
}

// HumanName is a FHIR HumanName; openIMIS fills family and one given name.
type HumanName struct {
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Text   string   `json:"text,omitempty"`
	Use    string   `json:"use,omitempty"`
}

// ContactPoint is a FHIR ContactPoint (phone, email).
type ContactPoint struct {
	System string `json:"system,omitempty"`
	Use    string `json:"use,omitempty"`
	Value  string `json:"value,omitempty"`
}

// GetPatient reads an insuree: GET Patient/<uuid>/ (docs/upstreams/openimis.md
// §7). openIMIS answers an unknown UUID with HTTP 500, not 404
// (docs/upstreams/openimis.md trap 15).
func (c *Client) GetPatient(ctx context.Context, uuid string) (*Patient, error) {
	var p Patient
	if _, err := c.do(ctx, http.MethodGet, "Patient/"+url.PathEscape(uuid)+"/", nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
