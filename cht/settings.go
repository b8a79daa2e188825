package cht

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Version returns the CHT's version: GET /api/info, which needs no
// credentials.
func (c *Client) Version(ctx context.Context) (string, error) {
	var info struct {
		Version string `json:"version"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/info", nil, nil, &info); err != nil {
		return "", err
	}
	return info.Version, nil
}

// Forms returns the JSON forms of the app settings, by code:
// GET /api/v1/settings (any authenticated user).
func (c *Client) Forms(ctx context.Context) (map[string]json.RawMessage, error) {
	var settings struct {
		Forms map[string]json.RawMessage `json:"forms"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/settings", nil, nil, &settings); err != nil {
		return nil, err
	}
	return settings.Forms, nil
}

// GetPlace reads a place by _id: GET /api/v1/place/<id> (CHT 4.9+). A
// missing place is a 404; see IsNotFound.
func (c *Client) GetPlace(ctx context.Context, id string) (map[string]any, error) {
	var doc map[string]any
	if err := c.do(ctx, http.MethodGet, "/api/v1/place/"+url.PathEscape(id), nil, nil, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}
