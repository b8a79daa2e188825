package openimis

import (
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
func (c *Client) CreateQuestionnaireResponse(ctx context.Context, qr QuestionnaireResponse) (string, error) {
	qr.ResourceType = "QuestionnaireResponse"
	var out QuestionnaireResponse
	if _, err := c.do(ctx, http.MethodPost, "QuestionnaireResponse/", nil, qr, &out); err != nil {
		return "", err
	}
	// A 2xx is the proof that it is stored, with or without an id in the
	// answer (see CreateCommunication).
	return out.ID, nil
}

// NoQuestionnaireResponse reports whether err says the server has no
// QuestionnaireResponse endpoint (404 or 405).
func NoQuestionnaireResponse(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed)
}
