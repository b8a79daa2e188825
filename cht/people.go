package cht

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// Person is a CHT person document as the mediator creates it. Extra
// properties are stored by the CHT as they are (docs/upstreams/cht.md §3).
type Person struct {
	DateOfBirth string `json:"date_of_birth,omitempty"`
	// ID is the document _id. The mediator derives it from the insuree UUID,
	// so that a second create conflicts (409) instead of duplicating (docs/upstreams/cht.md §3).
	ID   string `json:"_id,omitempty"`
	Name string `json:"name"`
	// OpenIMISID is the insuree UUID; the claims_feedback task reads it from
	// the person (docs/upstreams/cht.md trap 7). Empty for the patient of
	// another FHIR source.
	OpenIMISID string `json:"openimis_id,omitempty"`
	// SourcePatientID is "<source>/<patient>" for the patient of a FHIR
	// source other than openIMIS (spec §8), the key the mediator finds the
	// person again by.
	SourcePatientID string `json:"source_patient_id,omitempty"`
	Phone           string `json:"phone,omitempty"`
	// Place is the parent place's UUID; without it no CHW receives the person
	// (docs/upstreams/cht.md trap 8).
	Place string `json:"place"`
	Sex   string `json:"sex,omitempty"`
	Type  string `json:"type"`
}

type createResponse struct {
	ID string `json:"id"`
	OK bool   `json:"ok"`
}

// CreatePerson creates a person: POST /api/v1/people (docs/upstreams/cht.md §3). It returns the
// new person's id. A person whose _id exists answers 409; see IsConflict.
func (c *Client) CreatePerson(ctx context.Context, p Person) (string, error) {
	if p.Type == "" {
		p.Type = "person"
	}
	var out createResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/people", nil, p, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", errors.New("cht POST /api/v1/people: answer without id")
	}
	return out.ID, nil
}

// GetPerson reads a person by _id: GET /api/v1/person/<id> (CHT 4.9+). A
// missing person is a 404; see IsNotFound.
func (c *Client) GetPerson(ctx context.Context, id string) (map[string]any, error) {
	var doc map[string]any
	if err := c.do(ctx, http.MethodGet, "/api/v1/person/"+url.PathEscape(id), nil, nil, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}
