package openimis

import (
	"bytes"
	"cmp"
	"context"
	"net/http"
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/internal/fastjson"
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
// (without an id), else the answer's id or its Location's, as a generic
// FHIR server would; empty when the answer names none, or has no JSON body
// (Prefer: return=minimal). A 2xx is the proof that the feedback is stored:
// failing then would only post it again, to a refusal.
// openIMIS takes one feedback per claim: a second is refused with "Feedback
// exists for this claim" (see FeedbackExists), as HTTP 500 on 24.10.
func (c *Client) CreateCommunication(ctx context.Context, comm Communication) (string, error) {
	comm.ResourceType = "Communication"
	var out struct {
		Communication
		ID string `json:"id"`
	}
	resp, err := c.do(ctx, http.MethodPost, "Communication/", nil, comm, nil)
	if err != nil {
		return "", err
	}
	decodeCreated(resp.Body(), &out)
	for _, id := range out.Identifier {
		if id.Value != "" {
			return id.Value, nil
		}
	}
	return cmp.Or(out.ID, locationID(resp.Header().Get("Location"), "Communication")), nil
}

// decodeCreated reads the answer to a create into out, as far as it is a
// JSON resource: the create succeeded whatever the body, so a body that is
// empty or not JSON leaves out as it is.
func decodeCreated(body []byte, out any) {
	if len(bytes.TrimSpace(body)) > 0 {
		_ = fastjson.Unmarshal(body, out)
	}
}

// locationID is the id of a created resource of type typ in its Location
// header (<base>/<type>/<id>[/_history/<version>]), "" if it names none.
func locationID(location, typ string) string {
	parts := strings.Split(strings.TrimSuffix(location, "/"), "/")
	for i := len(parts) - 2; i >= 0; i-- {
		if parts[i] == typ {
			return parts[i+1]
		}
	}
	return ""
}
