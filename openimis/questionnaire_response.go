package openimis

import (
	"cmp"
	"context"
	"errors"
	"net/http"
)

// QuestionnaireResponse is a FHIR QuestionnaireResponse: the canonical form
// of the health worker's answers. openIMIS itself has no endpoint for it
// (docs/upstreams/openimis.md §5); a server that does gets it as is.
type QuestionnaireResponse struct {
	ID            string      `json:"id,omitempty"`
	Identifier    *Identifier `json:"identifier,omitempty"`
	Item          []QRItem    `json:"item"`
	Questionnaire string      `json:"questionnaire"`
	ResourceType  string      `json:"resourceType"`
	Status        string      `json:"status"`
	Subject       *Reference  `json:"subject,omitempty"`
}

// QRItem is one answered question, keyed by the Questionnaire's linkId.
type QRItem struct {
	Answer []QRAnswer `json:"answer,omitempty"`
	LinkID string     `json:"linkId"`
	Text   string     `json:"text,omitempty"`
}

// QRAnswer is one answer; exactly one value is set.
type QRAnswer struct {
	ValueBoolean   *bool      `json:"valueBoolean,omitempty"`
	ValueInteger   *int       `json:"valueInteger,omitempty"`
	ValueReference *Reference `json:"valueReference,omitempty"`
}

// CreateQuestionnaireResponse posts a QuestionnaireResponse: POST
// QuestionnaireResponse/. Real openIMIS answers 404 (no such route, docs/upstreams/openimis.md §5).
// It returns the stored resource's id, from the answer or its Location; empty
// when neither names one, for a 2xx is the proof that it is stored (see
// CreateCommunication).
func (c *Client) CreateQuestionnaireResponse(ctx context.Context, qr QuestionnaireResponse) (string, error) {
	qr.ResourceType = "QuestionnaireResponse"
	resp, err := c.do(ctx, http.MethodPost, "QuestionnaireResponse/", nil, qr, nil)
	if err != nil {
		return "", err
	}
	var out QuestionnaireResponse
	if err := decodeCreated(resp.Body(), &out); err != nil {
		return "", err
	}
	return cmp.Or(out.ID, locationID(resp.Header().Get("Location"), "QuestionnaireResponse")), nil
}

// NoQuestionnaireResponse reports whether err says the server has no
// QuestionnaireResponse endpoint (404 or 405).
func NoQuestionnaireResponse(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed)
}
