package openimis

import (
	"context"
	"net/http"
)

// Communication is claim feedback in the openimis-communication profile
// (docs/upstreams/openimis.md §5): status completed, about the claim, from the
// insuree, with exactly five coded payloads.
type Communication struct {
	About        []Reference  `json:"about"`
	Identifier   []Identifier `json:"identifier,omitempty"`
	Meta         *Meta        `json:"meta,omitempty"`
	Payload      []Payload    `json:"payload"`
	ResourceType string       `json:"resourceType"`
	Status       string       `json:"status"`
	Subject      *Reference   `json:"subject"`
}

// Meta is a FHIR resource's meta; only the profile is used.
type Meta struct {
	Profile []string `json:"profile,omitempty"`
}

// Payload is one Communication payload: a coded type in extension[0] and the
// answer as a string.
type Payload struct {
	ContentString string      `json:"contentString"`
	Extension     []Extension `json:"extension"`
}

// Extension is a FHIR extension with the value types the mediator uses.
type Extension struct {
	URL                  string           `json:"url"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueReference       *Reference       `json:"valueReference,omitempty"`
	ValueString          string           `json:"valueString,omitempty"`
}

// CreateCommunication posts claim feedback: POST Communication/ (docs/upstreams/openimis.md §5). It
// returns the stored feedback's UUID: identifier[0], as openIMIS answers
// (without an id), else the answer's id, as a generic FHIR server would;
// empty when the answer names neither, for a 2xx is the proof that the
// feedback is stored: failing then would only post it again, to a refusal.
// openIMIS takes one feedback per claim: a second is refused with "Feedback
// exists for this claim" (see FeedbackExists), as HTTP 500 on 24.10.
func (c *Client) CreateCommunication(ctx context.Context, comm Communication) (string, error) {
	comm.ResourceType = "Communication"
	var out struct {
		Communication
		ID string `json:"id"`
	}
	if _, err := c.do(ctx, http.MethodPost, "Communication/", nil, comm, &out); err != nil {
		return "", err
	}
	for _, id := range out.Identifier {
		if id.Value != "" {
			return id.Value, nil
		}
	}
	return out.ID, nil
}
