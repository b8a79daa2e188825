package chttest

import "encoding/json"

// Version is the CHT version GET /api/info reports.
const Version = "4.21.0"

// getSettings is GET /api/v1/settings (api/src/controllers/settings.js):
// any authenticated user reads the app settings. The fake's settings hold
// only the JSON forms.
func (s *Server) getSettings(x *exchange) response {
	if resp, ok := x.authorize(); !ok {
		return resp
	}
	forms := make(map[string]json.RawMessage, len(s.rawForms))
	for code, raw := range s.rawForms {
		forms[code] = raw
	}
	return jsonResponse(200, map[string]any{"forms": forms})
}
