package cht

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Report is a JSON-form report for POST /api/v2/records (docs/upstreams/cht.md §1).
type Report struct {
	// Form is the JSON form code, e.g. OP.
	Form string
	// Fields are the form's fields. The CHT lower-cases keys and silently
	// drops keys its form does not define (docs/upstreams/cht.md trap 3).
	Fields map[string]any
}

// ErrNoReportID is a 200 {success:true} without an id: the CHT could not
// save the report (docs/upstreams/cht.md trap 1).
var ErrNoReportID = errors.New("cht POST /api/v2/records: answer without report id")

type recordResponse struct {
	ID      string `json:"id"`
	Success bool   `json:"success"`
}

// CreateReport posts a report: POST /api/v2/records (docs/upstreams/cht.md §1). It returns the
// report's id. The records API has no idempotency key: every call creates a
// report (docs/upstreams/cht.md trap 5).
func (c *Client) CreateReport(ctx context.Context, r Report) (string, error) {
	if r.Form == "" {
		return "", errors.New("cht: report without form")
	}
	body := make(map[string]any, len(r.Fields)+1)
	for k, v := range r.Fields {
		body[k] = v
	}
	body["_meta"] = map[string]any{"form": r.Form}
	var out recordResponse
	if err := c.do(ctx, http.MethodPost, "/api/v2/records", nil, body, &out); err != nil {
		return "", err
	}
	if !out.Success || out.ID == "" {
		return "", fmt.Errorf("%w (success=%t)", ErrNoReportID, out.Success)
	}
	return out.ID, nil
}
