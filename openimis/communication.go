package openimis

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
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
// FHIR server would; empty when the answer names none, or is empty (Prefer:
// return=minimal). A 2xx with a resource, or with nothing, is the proof that
// the feedback is stored: failing then would only post it again, to a
// refusal. A 2xx whose answer is not JSON is an error.
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
	if err := decodeCreated(resp.Body(), &out); err != nil {
		return "", err
	}
	for _, id := range out.Identifier {
		if id.Value != "" {
			return id.Value, nil
		}
	}
	return cmp.Or(out.ID, locationID(resp.Header().Get("Location"), "Communication")), nil
}

// decodeCreated reads the answer to a create into out. An empty answer
// (Prefer: return=minimal) leaves out as it is; an answer that is not JSON
// is an error, for a 2xx page that is not a FHIR server's (a proxy's login
// page) must not pass for a stored feedback.
func decodeCreated(body []byte, out any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := fastjson.Unmarshal(body, out); err != nil {
		return fmt.Errorf("openimis: the answer to a create is not a FHIR resource: %w", err)
	}
	return nil
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
